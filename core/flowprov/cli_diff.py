"""CLI: flowprov diff (issue 14; being built)."""

COMMANDS: tuple = ()
