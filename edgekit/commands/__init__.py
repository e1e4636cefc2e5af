"""One module per `edgekit` command; cli.COMMANDS lists them in help order."""
