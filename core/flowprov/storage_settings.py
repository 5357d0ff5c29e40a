"""Settings of an object-storage root: the fsspec options kept with the instance (endpoint, region
and the like — never a secret), and the environment variables that override them, never silently.

Layers, lowest first (a higher layer wins, key by key; nested dicts such as ``client_kwargs`` are
merged key by key):

1. fsspec's own configuration (its config files, read when fsspec was imported);
2. the options stored with the instance;
3. the cloud SDKs' variables: ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``,
   ``AWS_DEFAULT_REGION``, ``AWS_REGION`` for S3; ``STORAGE_EMULATOR_HOST`` for GCS;
4. fsspec's variables ``FSSPEC_S3_<OPTION>`` / ``FSSPEC_S3`` (a JSON dict), and the same for GCS.

An environment value that replaces a different stored one is logged once per process as a
warning on the ``flowprov`` logger, naming both. fsspec itself would merge its configuration
*under* explicit options (the stored ones would win); flowprov passes every option in force
explicitly, so what `effective_options` shows is what the filesystem is built with.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

from .errors import ValidationError

logger = logging.getLogger("flowprov")

# fsspec registers each filesystem class under several protocol names; its configuration (and
# its FSSPEC_<PROTO>_* variables) may use any of them
PROTOCOLS = {"s3": ("s3", "s3a"), "gs": ("gs", "gcs")}

# Options a stored config may hold, with the type a CLI string is turned into. Dict-valued ones
# are passed through (checked for secrets); anything else is refused with the list of these.
_S3_OPTIONS: dict[str, type | tuple] = {
    "endpoint_url": str,
    "anon": bool,
    "use_ssl": bool,
    "requester_pays": bool,
    "version_aware": bool,
    "cache_regions": bool,
    "default_block_size": int,
    "default_fill_cache": bool,
    "default_cache_type": str,
    "max_concurrency": int,
    "fixed_upload_size": bool,
    "profile": str,  # an AWS profile's *name*: the keys stay in ~/.aws/credentials
    "client_kwargs": dict,
    "config_kwargs": dict,
    "s3_additional_kwargs": dict,
}
_GCS_OPTIONS: dict[str, type | tuple] = {
    "endpoint_url": str,
    "project": str,
    "requester_pays": (bool, str),  # True, or the project id to bill
    "default_location": str,
    "access": str,
    "consistency": str,
    "block_size": int,
    "cache_timeout": float,
    "requests_timeout": float,
    "timeout": float,
    "version_aware": bool,
    "token": str,  # only the credential-free modes in GCS_TOKEN_MODES
    "session_kwargs": dict,
}
OPTIONS = {"s3": _S3_OPTIONS, "gs": _GCS_OPTIONS}
# values inside dict options that are numbers to botocore (a CLI gives strings)
_NESTED_TYPES = {
    "config_kwargs.connect_timeout": float,
    "config_kwargs.read_timeout": float,
    "config_kwargs.max_pool_connections": int,
    "config_kwargs.retries.max_attempts": int,
    "config_kwargs.retries.total_max_attempts": int,
}
# gcsfs `token` values that name *how* to authenticate, not a credential: anonymous, the
# application-default chain (GOOGLE_APPLICATION_CREDENTIALS, gcloud), the metadata server
GCS_TOKEN_MODES = {"anon", "google_default", "cloud"}

# Names that hold (or name) a credential, at any depth. `key` alone is s3fs's access key id;
# the suffix rule catches secret_access_key, api_key, SSECustomerKey (an SSE-C key is a secret),
# refresh_token, ... `SSEKMSKeyId`, `region_name`, `endpoint_url`, `requester_pays`, `anon`,
# `project`, `default_location` do not match it and are harmless: they say where and how, not who.
_SECRET_NAMES = {
    "username",  # s3fs: another name for the access key id
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "session_token",
    "security_token",
    "credentials",
    "credentials_file",
    "connection_string",
    "private_key_id",
}
_SECRET_RE = re.compile(r"(secret|password|passwd|token|key|credentials?)$", re.IGNORECASE)
# never stored: objects or process state, not settings
_INTERNAL = {"session", "loop", "asynchronous", "skip_instance_cache", "use_listings_cache"}


def secrets_go(type_: str) -> str:
    if type_ == "gs":
        return (
            "give GCS credentials through GOOGLE_APPLICATION_CREDENTIALS (a service-account "
            "file) or `gcloud auth application-default login`"
        )
    return (
        "give S3 keys through the AWS environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or AWS_PROFILE) or ~/.aws/credentials"
    )


def is_secret_name(name: str) -> bool:
    n = name.lower()
    return n in _SECRET_NAMES or bool(_SECRET_RE.search(n))


def validate_options(type_: str, options: dict | None) -> dict:
    """The options as they are stored: dotted keys ("client_kwargs.region_name") nested, CLI
    strings turned into the types the filesystem expects, `region`/`region_name` of S3 moved to
    `client_kwargs.region_name`, `client_kwargs.endpoint_url` to `endpoint_url`. Refuses secrets
    (saying where they go), unknown options, a local root with options, credentials in a URL."""
    if not options:
        return {}
    if not isinstance(options, dict):
        raise ValidationError(
            f"storage options must be a mapping of names to values, not {options!r}"
        )
    if type_ == "local":
        raise ValidationError(
            f"a local storage root takes no options (got {', '.join(sorted(options))})"
        )
    known = OPTIONS.get(type_)
    if known is None:
        raise ValidationError(f"flowprov keeps no options for {type_}:// storage")
    flat = normalize_flat(type_, flatten(nest(options)))
    for name, value in flat.items():  # secrets first: whatever else is wrong with them
        _refuse_secret(type_, name, value)
    out: dict[str, Any] = {}
    for name, value in flat.items():
        top = name.split(".", 1)[0]
        if top in _INTERNAL:
            raise ValidationError(f"storage option {name!r} is not a setting flowprov can keep")
        kind = known.get(top)
        if kind is None and type_ == "gs" and top in ("region", "region_name"):
            raise ValidationError(
                f"GCS takes no region (got {name!r}): a bucket's location is its own, and "
                "reaching it needs none (default_location says where new buckets go)"
            )
        if kind is None:
            raise ValidationError(
                f"unknown {type_} storage option {name!r}; known: {', '.join(sorted(known))}"
            )
        if kind is dict:
            if name == top:  # an empty dict, or a value where a mapping belongs
                if value == {}:
                    continue
                raise ValidationError(
                    f"storage option {name!r} is a mapping: set {name}.NAME=VALUE"
                )
            value = _coerce(name, _NESTED_TYPES.get(name), value, nested=True)
        elif name != top:
            raise ValidationError(f"storage option {top!r} is not a mapping (got {name!r})")
        else:
            value = _coerce(name, kind, value)
        out[name] = value
    if type_ == "gs" and "token" in out and out["token"] not in GCS_TOKEN_MODES:
        raise ValidationError(
            f"storage option 'token' may only name a way to authenticate "
            f"({', '.join(sorted(GCS_TOKEN_MODES))}), never a credential: {secrets_go(type_)}"
        )
    if "endpoint_url" in out:
        out["endpoint_url"] = _check_endpoint(out["endpoint_url"])
    try:
        json.dumps(out)
    except (TypeError, ValueError) as e:
        raise ValidationError(
            f"storage options must be plain values (text, numbers): {e}"
        ) from None
    return nest(out)


def _refuse_secret(type_: str, name: str, value) -> None:
    gcs_mode = type_ == "gs" and name == "token" and value in GCS_TOKEN_MODES
    if any(is_secret_name(part) for part in name.split(".")) and not gcs_mode:
        raise ValidationError(
            f"storage option {name!r} would hold a credential, and storage options are kept in "
            f"the instance where every member can read them: {secrets_go(type_)}"
        )
    if isinstance(value, str) and re.search(r"://[^/@\s]+@", value):
        raise ValidationError(
            f"storage option {name!r} carries credentials in a URL (user:password@): "
            f"{secrets_go(type_)}"
        )


def _check_endpoint(url) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(f"endpoint_url must be an http:// or https:// URL, not {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            f"endpoint_url {url!r} is not an http:// or https:// URL with a host "
            "(e.g. https://s3.eu-central-1.example.org or http://127.0.0.1:9000)"
        )
    return url.strip().rstrip("/")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(name: str, kind, value, nested: bool = False):
    """A CLI string as the option's type; a nested value of unknown type keeps JSON literals."""
    if kind is None:
        if (
            nested
            and isinstance(value, str)
            and name.rsplit(".", 1)[-1]
            not in (
                "region_name",
                "endpoint_url",
                "api_version",
            )
        ):
            low = value.strip().lower()
            if low in ("true", "false", "null") or re.fullmatch(r"-?\d+(\.\d+)?", low):
                return json.loads(low)
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool in kinds:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    if int in kinds or float in kinds:
        num = int if int in kinds else float
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return num(value)
        try:
            return num(str(value).strip())
        except ValueError:
            pass
    if str in kinds and isinstance(value, str):
        return value
    want = " or ".join(k.__name__ for k in kinds)
    raise ValidationError(f"storage option {name!r} must be {want}, not {value!r}")


# -- flat <-> nested ----------------------------------------------------------------------------


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"client_kwargs": {"region_name": "x"}} -> {"client_kwargs.region_name": "x"}"""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def nest(d: dict) -> dict:
    """Dotted keys (at any depth) as nested dicts; the inverse of `flatten`."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = nest(v)
        parts = str(k).split(".")
        cur = out
        for p in parts[:-1]:
            nxt = cur.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ValidationError(f"storage option {p!r} is set both as a value and a mapping")
            cur = nxt
        last = parts[-1]
        if isinstance(v, dict) and isinstance(cur.get(last), dict):
            cur[last] = {**cur[last], **v}
        else:
            cur[last] = v
    return out


def normalize_flat(type_: str, flat: dict[str, Any]) -> dict[str, Any]:
    """One name per setting: for S3 the region is client_kwargs.region_name (s3fs passes it to
    the boto client) and the endpoint the top-level endpoint_url (s3fs ≥ 2023)."""
    if type_ != "s3":
        return dict(flat)
    out: dict[str, Any] = {}
    for k, v in flat.items():
        if k in ("region", "region_name"):
            k = "client_kwargs.region_name"
        elif k == "client_kwargs.endpoint_url":
            k = "endpoint_url"
        if k in out and out[k] != v:
            raise ValidationError(f"storage option {k!r} is given twice: {out[k]!r} and {v!r}")
        out[k] = v
    return out


# -- the environment ----------------------------------------------------------------------------


def _fsspec_env(type_: str, environ) -> dict[str, tuple[Any, str]]:
    """FSSPEC_<PROTO> (a JSON dict) then FSSPEC_<PROTO>_<OPTION> (a JSON literal or text), as
    fsspec reads them: flat option -> (value, variable)."""
    out: dict[str, tuple[Any, str]] = {}
    protos = [p.upper() for p in PROTOCOLS.get(type_, (type_,))]
    for p in protos:
        var = f"FSSPEC_{p}"
        if var in environ:
            try:
                d = json.loads(environ[var])
            except json.JSONDecodeError:
                d = None
            if isinstance(d, dict):
                for k, v in flatten(d).items():
                    out[k] = (v, var)
    for p in protos:
        pre = f"FSSPEC_{p}_"
        for var in sorted(environ):
            if var.startswith(pre) and len(var) > len(pre):
                raw = environ[var]
                try:
                    v = json.loads(raw)
                except json.JSONDecodeError:
                    v = raw
                name = var[len(pre) :].lower()
                if isinstance(v, dict):
                    for k, vv in flatten(v, name + ".").items():
                        out[k] = (vv, var)
                else:
                    out[name] = (v, var)
    return out


def _sdk_env(type_: str, environ) -> dict[str, tuple[Any, str]]:
    """The cloud SDKs' own variables, most specific last (it wins)."""
    out: dict[str, tuple[Any, str]] = {}
    if type_ == "s3":
        for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            if environ.get(var):
                out["endpoint_url"] = (environ[var], var)
        for var in ("AWS_DEFAULT_REGION", "AWS_REGION"):
            if environ.get(var):
                out["client_kwargs.region_name"] = (environ[var], var)
    elif type_ == "gs":
        host = environ.get("STORAGE_EMULATOR_HOST", "")
        if host and host != "default":
            if not host.startswith(("http://", "https://")):
                host = f"http://{host}"  # as gcsfs reads it
            out["endpoint_url"] = (host, "STORAGE_EMULATOR_HOST")
    return out


def environment_options(type_: str, environ=None) -> dict:
    """The endpoint and region the environment gives now (no secrets), as options to store: what
    `init` or `storage add` keeps so that the instance remembers which server it was made on."""
    environ = os.environ if environ is None else environ
    layers = {**_sdk_env(type_, environ), **_fsspec_env(type_, environ)}
    keep = {"endpoint_url", "client_kwargs.region_name", "project"}
    flat = normalize_flat(type_, {k: v for k, (v, _) in layers.items()})
    return nest({k: v for k, v in flat.items() if k in keep})


def _fsspec_conf(type_: str) -> dict[str, Any]:
    """What fsspec's import-time configuration holds for this storage type (it would merge it
    into every filesystem it builds)."""
    try:
        import fsspec.config
    except ImportError:
        return {}
    merged: dict[str, Any] = {}
    for p in PROTOCOLS.get(type_, (type_,)):
        merged.update(flatten(dict(fsspec.config.conf.get(p, {}))))
    return merged


_warned: set[tuple] = set()


def resolve(type_: str, root: str, stored: dict | None, environ=None) -> dict[str, tuple[Any, str]]:
    """Every option in force for a root: flat name -> (real value, source). Sources:
    "instance", "environment VAR", "fsspec configuration". Warns (once per process) when the
    environment replaces a different stored value."""
    environ = os.environ if environ is None else environ
    sdk = _sdk_env(type_, environ)
    fenv = _fsspec_env(type_, environ)
    # fsspec's configuration minus what the current environment explains: its config files
    conf = {k: v for k, v in _fsspec_conf(type_).items() if k not in fenv}
    layers = [
        {k: (v, "fsspec configuration") for k, v in conf.items()},
        {k: (v, "instance") for k, v in flatten(stored or {}).items()},
        {k: (v, f"environment {var}") for k, (v, var) in sdk.items()},
        {k: (v, f"environment {var}") for k, (v, var) in fenv.items()},
    ]
    out: dict[str, tuple[Any, str]] = {}
    for layer in layers:
        out.update(_normalize_sourced(type_, layer))
    stored_flat = normalize_flat(type_, flatten(stored or {}))
    for k, (v, src) in out.items():
        if src.startswith("environment ") and k in stored_flat and stored_flat[k] != v:
            _warn_override(root, k, stored_flat[k], v, src)
    return dict(sorted(out.items()))


def _normalize_sourced(type_: str, layer: dict[str, tuple[Any, str]]) -> dict[str, tuple]:
    if type_ != "s3":
        return layer
    out = {}
    for k, vs in layer.items():
        if k in ("region", "region_name"):
            k = "client_kwargs.region_name"
        elif k == "client_kwargs.endpoint_url":
            k = "endpoint_url"
        out[k] = vs
    return out


def _warn_override(root: str, name: str, stored, value, source: str) -> None:
    key = (root, name, repr(stored), repr(value), source)
    if key in _warned:
        return
    _warned.add(key)
    show = mask(name, value)
    logger.warning(
        "storage %s: %s = %s from the %s overrides the instance's %s",
        root,
        name,
        show,
        source,
        mask(name, stored),
    )


def mask(name: str, value) -> Any:
    """A value fit to show: a credential from the environment shows as ***."""
    last = name.rsplit(".", 1)[-1]
    if is_secret_name(last) and not (last == "token" and value in GCS_TOKEN_MODES):
        return "***"
    if isinstance(value, str) and re.search(r"://[^/@\s]+@", value):
        return re.sub(r"(://)[^/@\s]+@", r"\1***@", value)
    return value
