"""Instance and user configuration files (YAML).

These are plain dataclasses validated by hand rather than pydantic models: every CLI call reads
them, and importing pydantic would cost ~70 ms of the ~0.4 s budget of `flowprov ls`.

Layout under ``settings.config_dir``::

    instances/<name>.yaml   one per instance: name, uid, db URL (never a password), storage root
    current_instance        the name of the instance used when FLOWPROV_INSTANCE is unset
    user.yaml               the logged-in user: handle, name, uid

The current instance is found from ``FLOWPROV_INSTANCE`` (a name or a yaml path), then from
``current_instance`` — never from the current working folder.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

from ._settings import settings
from .errors import FlowprovError, NoInstanceError


@dataclass(frozen=True)
class _Config:
    @classmethod
    def from_dict(cls, data) -> _Config:
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        for name, f in known.items():
            value = data.get(name)
            optional = "None" in str(f.type)
            if value is None and not optional:
                raise ValueError(f"missing field {name!r}")
            if value is not None and not isinstance(value, str):
                raise ValueError(f"field {name!r} must be a string")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def copy(self, **changes) -> _Config:
        return replace(self, **changes)


@dataclass(frozen=True)
class InstanceConfig(_Config):
    name: str
    uid: str
    db: str
    storage: str


@dataclass(frozen=True)
class UserConfig(_Config):
    handle: str
    name: str | None = None
    uid: str | None = None


def instances_dir() -> Path:
    return settings.config_dir / "instances"


def instance_file(name: str) -> Path:
    return instances_dir() / f"{name}.yaml"


def _read_yaml(path: Path, model: type[_Config]):
    try:
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return model.from_dict(data)
    except (OSError, yaml.YAMLError, ValueError, TypeError) as e:
        raise FlowprovError(f"cannot read flowprov config {path}: {e}") from e


def _write_yaml(path: Path, model: _Config) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(model.to_dict(), sort_keys=False))
    os.replace(tmp, path)


def save_instance_config(cfg: InstanceConfig, make_current: bool = True) -> Path:
    path = instance_file(cfg.name)
    _write_yaml(path, cfg)
    if make_current:
        (settings.config_dir / "current_instance").write_text(cfg.name + "\n")
    return path


def locate_instance_config(name: str | None = None) -> Path:
    """The yaml file of the instance `name` (an instance name or a yaml path), else of the current
    instance; a NoInstanceError says how to get one."""
    env = name or os.environ.get("FLOWPROV_INSTANCE")
    if env:
        candidate = Path(env).expanduser()
        if env.endswith((".yaml", ".yml")) or os.sep in env:
            if candidate.is_file():
                return candidate
            raise NoInstanceError(f"FLOWPROV_INSTANCE={env}: no such instance file")
        path = instance_file(env)
        if not path.is_file():
            raise NoInstanceError(
                f"FLOWPROV_INSTANCE={env}: no instance of that name in {instances_dir()}. "
                "Run `flowprov init --storage DIR --name NAME` first."
            )
        return path
    current = settings.config_dir / "current_instance"
    if current.is_file():
        name = current.read_text().strip()
        path = instance_file(name)
        if path.is_file():
            return path
        raise NoInstanceError(
            f"the current instance {name!r} has no config at {path}; run `flowprov init` again"
        )
    raise NoInstanceError(
        "no flowprov instance is set up: run `flowprov init --storage ./mydata` "
        "(or set FLOWPROV_INSTANCE to an instance name)"
    )


def load_instance_config(path: Path) -> InstanceConfig:
    return _read_yaml(path, InstanceConfig)


def forget_instance(name: str) -> None:
    path = instance_file(name)
    if path.exists():
        path.unlink()
    current = settings.config_dir / "current_instance"
    if current.is_file() and current.read_text().strip() == name:
        current.unlink()


def load_user_config() -> UserConfig | None:
    path = settings.config_dir / "user.yaml"
    if not path.is_file():
        return None
    return _read_yaml(path, UserConfig)


def save_user_config(user: UserConfig) -> Path:
    path = settings.config_dir / "user.yaml"
    _write_yaml(path, user)
    return path


_user_cache: dict[tuple, UserConfig] = {}


def current_user_config() -> UserConfig:
    """FLOWPROV_USER, then `flowprov login`, then the operating-system account.

    Asked on every write, so the answer is cached until the variable or user.yaml changes."""
    handle = os.environ.get("FLOWPROV_USER")
    path = settings.config_dir / "user.yaml"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = None
    key = (handle, str(path), mtime)
    cached = _user_cache.get(key)
    if cached is None:
        cached = _resolve_user(handle)
        _user_cache.clear()
        _user_cache[key] = cached
    return cached


def _resolve_user(handle: str | None) -> UserConfig:
    logged_in = load_user_config()
    if handle:
        if logged_in is not None and logged_in.handle == handle:
            return logged_in
        return UserConfig(handle=handle)
    if logged_in is not None:
        return logged_in
    import getpass

    try:
        return UserConfig(handle=getpass.getuser())
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return UserConfig(handle="unknown")
