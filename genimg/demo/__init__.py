"""The built-in demo assets and the tools that make and judge them."""
