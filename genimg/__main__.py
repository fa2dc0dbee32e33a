from genimg.cli.main import main

main()
