"""`flowprov status [--watch]` (stub: the status helper fills it)."""

import click


@click.command()
def status():
    """Runs in progress and just finished, across engines (not built yet)."""
    raise click.ClickException("not built yet")


COMMANDS = (status,)
