"""`flowprov nextflow listen`: receive Nextflow's weblog events live and record them."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8750, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="FLOWPROV_WEBLOG_TOKEN",
    metavar="USER:PASSWORD",
    help="Require HTTP Basic credentials (Nextflow's weblog.basicToken); needed off loopback. "
    "Also read from FLOWPROV_WEBLOG_TOKEN, which keeps it out of `ps`.",
)
@click.option(
    "--journal",
    type=click.Path(file_okay=False),
    help="Journal folder (default: per instance, under flowprov's cache folder).",
)
@click.option(
    "--fsync",
    is_flag=True,
    help="fsync each event before acknowledging it: survives a power cut, not only a kill.",
)
def listen(host, port, token, journal, fsync):
    """Receive Nextflow's weblog events live and record them (Nextflow: -with-weblog URL).

    Each event is journaled on disk before Nextflow gets its answer, then applied to the current
    instance in batches; a receiver killed and started again applies what its journal holds."""
    import asyncio
    import logging
    from pathlib import Path

    from flowprov import config
    from flowprov import instance as inst_mod

    from .journal import default_dir
    from .server import check_bind, serve

    expected = check_bind(host, token)
    config_path = config.locate_instance_config()
    inst = inst_mod.current()
    journal_dir = Path(journal).expanduser() if journal else default_dir(inst)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s flowprov listen %(levelname)s %(message)s"
    )
    log = logging.getLogger("flowprov.weblog")
    log.info("instance %r (%s)", inst.name, inst.db_display)
    asyncio.run(
        serve(
            journal_dir,
            host,
            port,
            expected,
            instance_config=config_path.resolve(),
            fsync=fsync,
            announce=log.info,
        )
    )
