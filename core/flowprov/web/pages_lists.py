"""Lists of artifacts, runs, transforms, users, storages: filters, sorting, pagination. STUB."""

ROUTES = []
