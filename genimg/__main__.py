from genimg.cli.main import entry

entry()
