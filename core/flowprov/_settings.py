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
"""

from __future__ import annotations

import os
from pathlib import Path


def _env_dir(var: str, xdg: str, default: str) -> Path:
    if os.environ.get(var):
        return Path(os.environ[var]).expanduser()
    base = os.environ.get(xdg) or os.path.expanduser(default)
    return Path(base) / "flowprov"


class Settings:
    """Knobs a user may turn from Python."""

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
