"""The lineage page: the interactive graph of `flowprov lineage --format html`, linked. STUB."""

ROUTES = []
