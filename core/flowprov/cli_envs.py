"""CLI: flowprov envs (issue 14; being built)."""

COMMANDS: tuple = ()
