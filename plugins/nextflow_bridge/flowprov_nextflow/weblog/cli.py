"""`flowprov nextflow listen` (stub: the receiver helper fills it)."""

import click


@click.command()
def listen():
    """Receive Nextflow's weblog events live and record them (not built yet)."""
    raise click.ClickException("not built yet")
