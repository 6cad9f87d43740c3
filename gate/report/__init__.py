"""Report formats shared by commands: SARIF 2.1.0, GitHub workflow commands, lint text/JSON."""
