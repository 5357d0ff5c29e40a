"""`flowprov nextflow ingest | listen` — the `nextflow` command group, which the flowprov CLI finds
through the `flowprov.commands` entry point (pyproject.toml); this module never imports the CLI."""

from __future__ import annotations

import click


@click.group()
def nextflow():
    """Record Nextflow runs from their trace files, work directories and lineage store."""


@nextflow.command()
@click.argument("trace", required=False, type=click.Path())
@click.option(
    "--workdir", type=click.Path(), help="The run's work folder: each task's files and script."
)
@click.option(
    "--lineage", type=click.Path(), help="A Nextflow (≥ 25.04) data-lineage store, e.g. .lineage"
)
@click.option("--pipeline", help="Pipeline name, e.g. nf-core/scrnaseq.")
@click.option("--version", "version_", help="Pipeline version, e.g. 2.7.1.")
@click.option(
    "--mapping",
    type=click.Path(),
    help="YAML naming processes (pattern → name, version, reference).",
)
@click.option("--run-id", help="The run's identity (e.g. Nextflow's run name or session id).")
@click.option("--sep", help="Trace separator (default: detected from the header).")
@click.option(
    "--timezone",
    help="Zone of the machine that ran Nextflow, e.g. Europe/Berlin: trace dates are its wall "
    "times (default: the zone the run was recorded with, else this machine's).",
)
@click.option("--skip-bad-rows", is_flag=True, help="Ingest the good rows and report the bad ones.")
def ingest(
    trace, workdir, lineage, pipeline, version_, mapping, run_id, sep, timezone, skip_bad_rows
):
    """Ingest a trace file (TRACE, plain or gzipped) and/or a lineage store (--lineage)."""
    from flowprov.cli_output import _console

    from .ingest import ingest_lineage, ingest_trace

    if not trace and not lineage:
        raise click.UsageError("give a TRACE file, --lineage DIR, or both")
    out = _console()
    if trace:
        with out.status(f"ingesting {trace} …"):
            r = ingest_trace(
                trace,
                workdir=workdir,
                pipeline=pipeline,
                version=version_,
                mapping=mapping,
                run_id=run_id,
                sep=sep.encode().decode("unicode_escape") if sep else None,
                skip_bad_rows=skip_bad_rows,
                timezone=timezone,
            )
        out.print(
            f"{trace}: {r.tasks} tasks; {r.new_runs} runs recorded, {r.known_runs} already known, "
            f"{r.new_artifacts} new artifacts (pipeline run {r.pipeline_run})",
            highlight=False,
        )
        _details(out, r)
    if lineage:
        r = ingest_lineage(lineage, pipeline=pipeline, version=version_, mapping=mapping)
        out.print(
            f"{lineage}: {r.tasks} task runs; {r.new_runs} runs recorded, {r.known_runs} already "
            f"known, {r.new_artifacts} new artifacts",
            highlight=False,
        )
        _details(out, r)


def _details(out, report) -> None:
    """What was skipped, not ingested, or recorded other than one might expect — each once."""
    from rich.markup import escape

    for label, items in (
        ("skipped", report.skipped),
        ("not ingested", report.not_ingested),
        ("note", report.notes),
        ("warning", report.warnings),
    ):
        for item in items:
            out.print(f"  [yellow]{label}[/] {escape(item)}", highlight=False)


def _add_listen() -> None:
    from .weblog.cli import listen

    nextflow.add_command(listen)


_add_listen()
