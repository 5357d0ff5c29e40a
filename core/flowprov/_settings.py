"""Process-wide settings (``fp.settings``) and where flowprov keeps its files.

Paths are read from the environment each time they are asked for, so a test or a cluster job
can point flowprov elsewhere by setting a variable:

- ``FLOWPROV_CONFIG_DIR`` (default ``$XDG_CONFIG_HOME/flowprov`` or ``~/.config/flowprov``):
  instance configs, the current instance, the logged-in user.
- ``FLOWPROV_CACHE_DIR`` (default ``$XDG_CACHE_HOME/flowprov`` or ``~/.cache/flowprov``):
  the hash cache and downloaded copies of remote artifacts.
- ``FLOWPROV_INSTANCE``: the instance to use (a name, or the path of an instance yaml file).
- ``FLOWPROV_USER``: the user handle to act as (overrides ``flowprov login``).
- ``FLOWPROV_HASH_CACHE=0``: never reuse a cached hash.

``fp.settings.storage`` (root, type, ...) and ``fp.settings.instance`` (name, slug, db, ...)
describe the current instance, read when asked, so they follow FLOWPROV_INSTANCE and `init`.
"""

from __future__ import annotations

import os
from pathlib import Path

_dirs: dict[tuple, Path] = {}  # asked on every write: the Path of each set of variables, once


def _env_dir(var: str, xdg: str, default: str) -> Path:
    env = os.environ
    key = (var, env.get(var), env.get(xdg), env.get("HOME"), default)
    path = _dirs.get(key)
    if path is None:
        if env.get(var):
            path = Path(env[var]).expanduser()
        else:
            path = Path(env.get(xdg) or os.path.expanduser(default)) / "flowprov"
        if len(_dirs) > 64:
            _dirs.clear()
        _dirs[key] = path
    return path


class StorageSettings:
    """The current instance's default storage root: where an upload writes its files so that
    they are registered in place (``fp.settings.storage.root / "raw" / "screen.csv"``)."""

    def __init__(self, instance) -> None:
        self._instance = instance

    @property
    def root(self) -> Path | str:
        """A local Path, or the URL of an s3:// or gs:// root."""
        storage = self._instance.storage
        return Path(storage.root) if storage.is_local else storage.root

    @property
    def root_as_str(self) -> str:
        return self._instance.storage.root

    @property
    def type(self) -> str:
        """local, s3 or gs."""
        return self._instance.storage.type

    @property
    def record(self):
        """The Storage record of this root (uid, region, description, created_by)."""
        from .records import Storage

        return Storage.filter(root=self.root_as_str).one()

    @property
    def uid(self) -> str:
        return self.record.uid

    @property
    def region(self) -> str | None:
        return self.record.region

    def __repr__(self) -> str:
        return f"StorageSettings(root='{self.root_as_str}', type={self.type!r})"


class InstanceSettings:
    """The current instance: its name, slug ("handle/name", as `flowprov init` prints it), uid,
    database (the URL never shows a password) and default storage."""

    def __init__(self, instance) -> None:
        self._instance = instance

    @property
    def name(self) -> str:
        return self._instance.name

    @property
    def owner(self) -> str:
        """The handle of the user flowprov acts as (instances are not owned by anyone in
        particular; this is the handle `flowprov init` prints before the name)."""
        return self._instance.user.handle

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def uid(self) -> str:
        return self._instance.config.uid

    @property
    def db(self) -> str:
        """The database URL, any password masked."""
        return self._instance.db_display

    @property
    def dialect(self) -> str:
        """sqlite or postgresql."""
        from .db import parse_url

        return parse_url(self._instance.config.db).get_backend_name()

    @property
    def storage(self) -> StorageSettings:
        return StorageSettings(self._instance)

    @property
    def config_path(self) -> Path:
        return self._instance.config_path

    def __repr__(self) -> str:
        return f"InstanceSettings(slug={self.slug!r}, db='{self.db}', storage='{self.storage.root_as_str}')"


class Settings:
    """Knobs a user may turn from Python, and what the current instance is."""

    def __init__(self) -> None:
        self.track_run_inputs: bool = True
        self.hash_algorithm: str = "blake3"
        self._hash_cache: bool | None = None

    @property
    def hash_cache(self) -> bool:
        if self._hash_cache is not None:
            return self._hash_cache
        return os.environ.get("FLOWPROV_HASH_CACHE", "1") not in ("0", "false", "no")

    @hash_cache.setter
    def hash_cache(self, value: bool) -> None:
        self._hash_cache = bool(value)

    @property
    def instance(self) -> InstanceSettings:
        """The current instance (a NoInstanceError says how to set one up)."""
        from .instance import current

        return InstanceSettings(current())

    @property
    def storage(self) -> StorageSettings:
        """The current instance's default storage root; ``.root`` is where to write files that
        should be registered in place."""
        from .instance import current

        return StorageSettings(current())

    @property
    def config_dir(self) -> Path:
        return _env_dir("FLOWPROV_CONFIG_DIR", "XDG_CONFIG_HOME", "~/.config")

    @property
    def cache_dir(self) -> Path:
        return _env_dir("FLOWPROV_CACHE_DIR", "XDG_CACHE_HOME", "~/.cache")

    def __repr__(self) -> str:
        return (
            f"Settings(track_run_inputs={self.track_run_inputs}, hash_algorithm="
            f"{self.hash_algorithm!r}, hash_cache={self.hash_cache}, config_dir='{self.config_dir}',"
            f" cache_dir='{self.cache_dir}')"
        )


settings = Settings()
