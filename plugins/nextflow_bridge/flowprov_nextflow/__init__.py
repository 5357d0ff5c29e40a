"""flowprov's Nextflow bridge: ingest a run's trace file, its task work directories and its
data-lineage store (`flowprov nextflow ingest`). Nextflow itself is not needed — only its files."""

from .ingest import IngestReport, ingest_lineage, ingest_trace

__all__ = ["IngestReport", "ingest_lineage", "ingest_trace"]
