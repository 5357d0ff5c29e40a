"""Errors a user can cause. Every one says what was wrong and what to do."""


class FlowprovError(Exception):
    """Base class of every error flowprov raises on purpose."""


class NoInstanceError(FlowprovError):
    """No flowprov instance is configured or the configured one cannot be found."""


class InstanceError(FlowprovError):
    """The instance exists but cannot be opened (corrupt, foreign or newer database)."""


class DatabaseMissing(InstanceError):
    """The instance's SQLite database file is not where its config says."""


class SchemaOutdated(InstanceError):
    """The database's schema is older than this flowprov's: it reads, but writes wait for
    `flowprov migrate`."""


class InstanceNotEmpty(FlowprovError):
    """`delete` was asked to remove an instance that still holds records or files."""


class DatabaseUnavailable(FlowprovError):
    """The database could not be reached."""


class PermissionDenied(FlowprovError):
    """The database refused a change (a read-only role, a read-only file)."""


class ValidationError(FlowprovError):
    """A value given to flowprov is not acceptable (bad key, bad type, bad status...)."""


class FileMissingError(FlowprovError, FileNotFoundError):
    """A file or folder flowprov was asked to register or read does not exist."""


class StorageError(FlowprovError):
    """Storage could not be written or read."""


class LookupFieldError(FlowprovError):
    """A query names a field or lookup that does not exist."""


class DoesNotExist(FlowprovError):
    """A query that must return exactly one record returned none."""


class MultipleResultsFound(FlowprovError):
    """A query that must return exactly one record returned several."""


class NotSaved(FlowprovError):
    """An operation needs a saved record."""


class NoCurrentRun(FlowprovError):
    """`finish()` was called with no tracked run."""


class ContentChanged(FlowprovError):
    """A file or object no longer holds the bytes its record names: reading it as that version
    would record a lie."""


def __getattr__(name: str):
    # the config file errors live with the config code (config.py imports this module)
    if name in ("ConfigFileError", "CurrentInstanceMissing"):
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module 'flowprov.errors' has no attribute {name!r}")
