"""Instance and user configuration files (YAML, validated by pydantic).

Layout under ``settings.config_dir``::

    instances/<name>.yaml   one per instance: name, uid, db URL (never a password), storage root
    current_instance        the name of the instance used when FLOWPROV_INSTANCE is unset
    user.yaml               the logged-in user: handle, name, uid

The current instance is found from ``FLOWPROV_INSTANCE`` (a name or a yaml path), then from
``current_instance`` — never from the current working folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import FlowprovError, NoInstanceError
from .settings import settings


class InstanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    uid: str
    db: str
    storage: str


class UserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handle: str
    name: str | None = None
    uid: str | None = None


def instances_dir() -> Path:
    return settings.config_dir / "instances"


def instance_file(name: str) -> Path:
    return instances_dir() / f"{name}.yaml"


def _read_yaml(path: Path, model: type[BaseModel]):
    try:
        data = yaml.safe_load(path.read_text())
        return model.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise FlowprovError(f"cannot read flowprov config {path}: {e}") from e


def _write_yaml(path: Path, model: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(model.model_dump(), sort_keys=False))
    os.replace(tmp, path)


def save_instance_config(cfg: InstanceConfig, make_current: bool = True) -> Path:
    path = instance_file(cfg.name)
    _write_yaml(path, cfg)
    if make_current:
        (settings.config_dir / "current_instance").write_text(cfg.name + "\n")
    return path


def locate_instance_config() -> Path:
    """The yaml file of the current instance, or a NoInstanceError saying how to get one."""
    env = os.environ.get("FLOWPROV_INSTANCE")
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


def current_user_config() -> UserConfig:
    """FLOWPROV_USER, then `flowprov login`, then the operating-system account."""
    handle = os.environ.get("FLOWPROV_USER")
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
    except Exception:  # no passwd entry in some containers
        return UserConfig(handle="unknown")
