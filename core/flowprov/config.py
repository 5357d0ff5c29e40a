"""Instance and user configuration files (YAML).

These are plain dataclasses validated by hand rather than pydantic models: every CLI call reads
them, and importing pydantic would cost ~70 ms of the ~0.4 s budget of `flowprov ls`.

Layout under ``settings.config_dir``::

    instances/<name>.yaml   one per instance: name, uid, db URL (never a password), storage root
    current_instance        the name of the instance used when FLOWPROV_INSTANCE is unset
    user.yaml               the logged-in user: handle, name, uid

The current instance is found from ``FLOWPROV_INSTANCE`` (a name or a yaml path), then from
``current_instance`` — never from the current working folder.

A file that cannot be read raises a ConfigFileError naming the file, what is wrong with it and the
command that rewrites it; that command (`flowprov login HANDLE --force`,
`flowprov init ... --force`) writes the file without reading it first.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from ._settings import settings
from .errors import FlowprovError, NoInstanceError, ValidationError

_UID = re.compile(r"[0-9A-Za-z]+")
_USER_UID_LEN = 8  # uids.USER_UID, the users.uid column's width


class ConfigFileError(FlowprovError):
    """A flowprov config file (an instance's yaml, user.yaml, current_instance) cannot be read.
    The message names the file, what is wrong and how to fix it; ``path`` is the file."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path


class CurrentInstanceMissing(ConfigFileError, NoInstanceError):
    """``current_instance`` names an instance whose config is gone (or is not a name): a broken
    config file, and also "no instance", for callers that only ask whether there is one."""


@dataclass(frozen=True)
class _Config:
    @classmethod
    def stored_fields(cls) -> list:
        return [f for f in fields(cls) if f.metadata.get("stored", True)]

    @classmethod
    def from_dict(cls, data) -> _Config:
        if data is None:
            raise ValueError("the file is empty")
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping of fields, got a YAML {type(data).__name__}")
        known = {f.name: f for f in cls.stored_fields()}
        unknown = set(map(str, data)) - set(known)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        for name, f in known.items():
            value = data.get(name)
            optional = "None" in str(f.type)
            if value is None and not optional:
                raise ValueError(f"missing field {name!r}")
            if value is not None and not isinstance(value, str):
                raise ValueError(
                    f"field {name!r} must be a string, not a YAML {type(value).__name__}"
                )
            if value is not None and not value.strip() and not optional:
                raise ValueError(f"field {name!r} is empty")
        cfg = cls(**data)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise ValueError when a field's value cannot be right (beyond its type)."""

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in self.stored_fields()}

    def copy(self, **changes) -> _Config:
        return replace(self, **changes)


@dataclass(frozen=True)
class InstanceConfig(_Config):
    name: str
    uid: str
    db: str
    storage: str


# Where the current user came from (UserConfig.source; never written to user.yaml).
FROM_ENV = "FLOWPROV_USER"
FROM_LOGIN = "login"
FROM_OS = "os account"


@dataclass(frozen=True)
class UserConfig(_Config):
    handle: str
    name: str | None = None
    uid: str | None = None
    # FROM_ENV, FROM_LOGIN or FROM_OS; not stored, not compared
    source: str = field(default=FROM_LOGIN, compare=False, metadata={"stored": False})

    def check(self) -> None:
        from .events import check_handle  # raises ValueError naming the handle

        check_handle(self.handle)
        if self.uid is not None and not (
            len(self.uid) == _USER_UID_LEN and _UID.fullmatch(self.uid)
        ):
            raise ValueError(
                f"field 'uid' must be {_USER_UID_LEN} letters and digits, got {self.uid!r}"
            )

    @property
    def is_os_account(self) -> bool:
        return self.source == FROM_OS

    def source_note(self) -> str | None:
        """One line for commands that record the user, when the user is the OS account (nobody
        chose it): None otherwise."""
        if not self.is_os_account:
            return None
        return (
            f"recorded as user {self.handle!r} (your OS account: nobody has run `flowprov login`"
            " here); run `flowprov login HANDLE` to act as yourself"
        )


def instances_dir() -> Path:
    return settings.config_dir / "instances"


def instance_file(name: str) -> Path:
    return instances_dir() / f"{name}.yaml"


def user_file() -> Path:
    return settings.config_dir / "user.yaml"


def current_instance_file() -> Path:
    return settings.config_dir / "current_instance"


# -- reading -------------------------------------------------------------------------------------
def _one_line(e: BaseException) -> str:
    """What is wrong with a config file, in one line (YAML errors span several)."""
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        m = e.problem_mark
        return f"not valid YAML: {e.problem} (line {m.line + 1}, column {m.column + 1})"
    if isinstance(e, yaml.reader.ReaderError):
        return f"not valid YAML: {e.reason} (character #x{e.character:04x} at offset {e.position})"
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return " ".join(str(e).split())


def _parse(text: bytes):
    return yaml.load(text.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _read_yaml(path: Path, model: type[_Config]):
    try:
        return model.from_dict(_parse(path.read_bytes()))
    except FileNotFoundError:
        raise
    except (OSError, yaml.YAMLError, ValueError, TypeError) as e:
        if model is UserConfig:
            fix = "fix or delete it, or run `flowprov login HANDLE --force` to rewrite it"
            what = "user file"
        else:
            fix = _instance_fix(path)
            what = "instance file"
        raise ConfigFileError(
            f"the flowprov {what} {path} cannot be read: {_one_line(e)} — {fix}", path
        ) from e


def _instance_fix(path: Path) -> str:
    """How to rewrite a broken instance file, with what can still be read from it."""
    if path.parent != instances_dir():  # a file FLOWPROV_INSTANCE names: flowprov did not write it
        return "fix it, or point FLOWPROV_INSTANCE at another instance"
    found = salvage(path, InstanceConfig)
    cmd = ["flowprov", "init", "--storage", found.get("storage", "DIR")]
    if "db" in found:
        cmd += ["--db", found["db"]]
    cmd += ["--name", path.stem, "--force"]
    hint = "" if "db" in found else " (add --db URL if its database is not the default SQLite)"
    import shlex

    shown = " ".join(shlex.quote(a) for a in cmd)
    return f"fix or delete it, or run `{shown}`{hint} to rewrite it"


_LINE = re.compile(r"^\s*([a-z_]+)\s*:\s*(.*?)\s*$")


def salvage(path: Path, model: type[_Config]) -> dict[str, str]:
    """The fields a broken config file still gives, each checked on its own ({} when none): the
    file as YAML when it parses, else `field: value` lines. For a repair that keeps what it can
    (a uid) and says so."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return {}
    try:
        data = _parse(text.encode())
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        data = {}
        for line in text.splitlines():
            m = _LINE.match(line)
            if m and m.group(1) not in data:
                value = m.group(2)
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                data[m.group(1)] = value
    names = {f.name for f in model.stored_fields()}
    found = {
        k: v
        for k, v in data.items()
        if k in names and isinstance(v, str) and v and "\ufffd" not in v
    }
    if model is UserConfig:
        from .events import check_handle

        try:
            check_handle(found.get("handle", ""))
        except ValueError:
            found.pop("handle", None)
        if not (len(found.get("uid", "")) == _USER_UID_LEN and _UID.fullmatch(found["uid"])):
            found.pop("uid", None)
    elif "uid" in found and not _UID.fullmatch(found["uid"]):
        found.pop("uid")
    return found


# -- writing -------------------------------------------------------------------------------------
def _write_text(path: Path, text: str) -> None:
    """Replace path's content at once: readers see the old file or the new one, never half."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # as a plain write would leave it (mkstemp makes it 0600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_yaml(path: Path, model: _Config) -> None:
    _write_text(path, yaml.safe_dump(model.to_dict(), sort_keys=False))


# -- instances -----------------------------------------------------------------------------------
def save_instance_config(cfg: InstanceConfig, make_current: bool = True) -> Path:
    """Write the instance's file (never reading what is there: also the repair of a broken one)."""
    path = instance_file(cfg.name)
    _write_yaml(path, cfg)
    if make_current:
        _write_text(current_instance_file(), cfg.name + "\n")
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
    current = current_instance_file()
    try:
        raw = current.read_bytes()
    except FileNotFoundError:
        raise NoInstanceError(
            "no flowprov instance is set up: run `flowprov init --storage ./mydata` "
            "(or set FLOWPROV_INSTANCE to an instance name)"
        ) from None
    except OSError as e:
        raise CurrentInstanceMissing(
            f"{current} cannot be read: {_one_line(e)} — fix or delete it, then "
            "`flowprov init --storage DIR --name NAME` chooses the current instance",
            current,
        ) from e
    try:
        name = raw.decode("utf-8").strip()
        problem = None if _is_instance_name(name) else f"{name[:60]!r} is not an instance name"
    except UnicodeDecodeError as e:
        problem = _one_line(e)
    if problem:
        raise CurrentInstanceMissing(
            f"{current} names the current instance but cannot be read: {problem} — delete it, "
            "then `flowprov init --storage DIR --name NAME` chooses the current instance",
            current,
        )
    path = instance_file(name)
    if path.is_file():
        return path
    raise CurrentInstanceMissing(
        f"the current instance {name!r} (named in {current}) has no config file {path} — run "
        f"`flowprov init --storage DIR --name {name}` (with --db URL if it used a database "
        f"server) to set it up again, or delete {current}",
        current,
    )


def _is_instance_name(name: str) -> bool:
    return bool(name) and "/" not in name and os.sep not in name and not name.startswith(".")


def load_instance_config(path: Path) -> InstanceConfig:
    """The instance file at path; a ConfigFileError names what is wrong and the repair."""
    try:
        return _read_yaml(path, InstanceConfig)
    except FileNotFoundError as e:
        raise NoInstanceError(f"no instance file {path}") from e


def forget_instance(name: str) -> None:
    path = instance_file(name)
    if path.exists():
        path.unlink()
    current = current_instance_file()
    try:
        if current.read_text().strip() == name:
            current.unlink()
    except (OSError, UnicodeDecodeError):
        pass


# -- the user ------------------------------------------------------------------------------------
def load_user_config(strict: bool = True) -> UserConfig | None:
    """The logged-in user (user.yaml), None when nobody logged in. A broken file raises a
    ConfigFileError naming it and `flowprov login HANDLE --force`; with strict=False it counts
    as no file (for a command about to rewrite it, or one that only shows it)."""
    path = user_file()
    try:
        return _read_yaml(path, UserConfig)
    except FileNotFoundError:
        return None
    except ConfigFileError:
        if strict:
            raise
        return None


def save_user_config(user: UserConfig) -> Path:
    """Write user.yaml at once (never reading it first: also the repair of a broken one)."""
    path = user_file()
    _write_yaml(path, user)
    _user_cache.clear()
    return path


_user_cache: dict[tuple, UserConfig] = {}


def current_user_config() -> UserConfig:
    """FLOWPROV_USER, then `flowprov login`, then the operating-system account; ``source`` says
    which. A broken user.yaml raises a ConfigFileError (even under FLOWPROV_USER: its name and uid
    would be lost silently).

    Asked on every write, so the answer is cached until the variable or user.yaml changes."""
    handle = os.environ.get("FLOWPROV_USER")
    path = user_file()
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = None
    key = (handle, str(path), stamp)
    cached = _user_cache.get(key)
    if cached is None:
        cached = _resolve_user(handle)
        _user_cache.clear()
        _user_cache[key] = cached
    return cached


def _resolve_user(handle: str | None) -> UserConfig:
    logged_in = load_user_config()
    if handle:
        from .events import check_handle

        try:
            check_handle(handle)
        except ValueError as e:
            raise ValidationError(f"FLOWPROV_USER: {e}") from None
        if logged_in is not None and logged_in.handle == handle:
            return logged_in.copy(source=FROM_ENV)
        return UserConfig(handle=handle, source=FROM_ENV)
    if logged_in is not None:
        return logged_in
    import getpass

    from .events import check_handle

    try:
        return UserConfig(handle=check_handle(getpass.getuser()), source=FROM_OS)
    except Exception:  # noqa: BLE001 - no passwd entry in some containers, or no valid handle
        return UserConfig(handle="unknown", source=FROM_OS)
