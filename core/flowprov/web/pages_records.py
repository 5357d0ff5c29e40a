"""One record's page: artifact (and its download), run, transform. STUB."""

ROUTES = []
