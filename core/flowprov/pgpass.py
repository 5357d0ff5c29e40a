"""The libpq password file (~/.pgpass): where a PostgreSQL password lives, since flowprov's
config never holds one.

Format (libpq, "The Password File"): one entry a line, ``hostname:port:database:username:password``;
a ``:`` or ``\\`` inside a field is escaped with ``\\``; ``*`` in the first four fields matches
anything and the first matching line wins; the file is ignored unless only its owner can read it
(0600). PGPASSFILE names another file; PGPASSWORD, when set, is used instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import ValidationError


def pgpass_path() -> Path:
    """The file libpq reads: PGPASSFILE, else ~/.pgpass (%APPDATA%/postgresql/pgpass.conf on
    Windows)."""
    if os.environ.get("PGPASSFILE"):
        return Path(os.environ["PGPASSFILE"]).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", "~")).expanduser() / "postgresql" / "pgpass.conf"
    return Path.home() / ".pgpass"


def _url(url):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError as e:
        raise ValidationError(f"invalid database URL: {e}") from None


def _is_postgres(u) -> bool:
    return u.get_backend_name() == "postgresql"


def connection_keys(url) -> tuple[str, str, str, str]:
    """(host, port, database, user) as libpq will match them in the password file for this URL:
    what the URL leaves out comes from PGHOST/PGPORT/PGDATABASE/PGUSER, then libpq's defaults (a
    Unix socket, matched as `localhost`; 5432; the user's name; the OS account)."""
    u = _url(url)
    query = {k: (v[0] if isinstance(v, tuple) else v) for k, v in u.query.items()}
    host = u.host or query.get("host") or os.environ.get("PGHOST") or "localhost"
    port = str(u.port or query.get("port") or os.environ.get("PGPORT") or 5432)
    if not u.username and not os.environ.get("PGUSER"):
        import getpass

        user = getpass.getuser()
    else:
        user = u.username or os.environ["PGUSER"]
    database = u.database or query.get("dbname") or os.environ.get("PGDATABASE") or user
    return host, port, database, user


def _escape(field: str) -> str:
    if "\n" in field or "\r" in field:
        raise ValidationError("a password file entry cannot hold a line break")
    return field.replace("\\", "\\\\").replace(":", "\\:")


def _split(line: str) -> list[str] | None:
    """A password-file line's five fields, unescaped as libpq reads them; None for a comment or a
    line that is not an entry."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    fields, cur, i = [], [], 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            i += 2
            continue
        if c == ":" and len(fields) < 4:
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    return fields if len(fields) == 5 else None


def lookup(url) -> str | None:
    """The password libpq would take from the password file for this URL (first match); None
    also when libpq would ignore the file (group or others may read it)."""
    path = pgpass_path()
    try:
        if sys.platform != "win32" and path.stat().st_mode & 0o077:
            return None
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    keys = connection_keys(url)
    for line in text.splitlines():
        f = _split(line)
        if f and all(a == "*" or a == b for a, b in zip(f[:4], keys, strict=True)):
            return f[4]
    return None


def save_pgpass(url) -> Path:
    """Write the URL's password into the password file (created 0600, kept 0600), replacing any
    line for the same host, port, database and user; the new line goes before every other entry
    so that an earlier wildcard line cannot shadow it. Returns the file's path."""
    import tempfile

    u = _url(url)
    if not u.password:
        raise ValidationError("the database URL holds no password to save")
    keys = connection_keys(u)
    entry = ":".join(_escape(k) for k in (*keys, str(u.password)))
    path = pgpass_path()
    real = Path(os.path.realpath(path))  # a symlinked ~/.pgpass stays a symlink
    try:
        old = real.read_text().splitlines()
    except FileNotFoundError:
        old = []
    except (OSError, UnicodeDecodeError) as e:
        raise ValidationError(f"cannot read the password file {path}: {e}") from e
    kept = [line for line in old if (_split(line) or [None] * 5)[:4] != list(keys)]
    at = next((i for i, line in enumerate(kept) if _split(line) is not None), len(kept))
    lines = [*kept[:at], entry, *kept[at:]]
    real.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def password_hint(url) -> str | None:
    """The line `flowprov init` prints when its --db URL holds a password (None otherwise): the
    password is not kept in flowprov's config, so say where later commands will find it."""
    u = _url(url)
    if not u.password or not _is_postgres(u):
        return None
    path = pgpass_path()
    if os.environ.get("PGPASSWORD") == u.password:
        return "the database password is not stored in flowprov's config: PGPASSWORD supplies it"
    if lookup(u) == u.password:
        return f"the database password is not stored in flowprov's config: {path} supplies it"
    return (
        f"the database password is not stored in flowprov's config: later commands need it in "
        f"{path} (run this `flowprov init` again with --save-password to write it there, mode "
        "0600) or in PGPASSWORD"
    )


def missing_password_hint(message: str, url=None) -> str | None:
    """For a failed connection whose driver message says the password was missing or wrong: where
    flowprov's PostgreSQL connections take it from (None for other failures, or a URL that is not
    PostgreSQL's)."""
    low = message.lower()
    if "no password supplied" not in low and "password authentication failed" not in low:
        return None
    if url is not None and not _is_postgres(_url(url)):
        return None
    return (
        f"the password is read from PGPASSWORD or {pgpass_path()} (flowprov's config never holds "
        "it): `flowprov init --db URL-WITH-PASSWORD --save-password ...` writes that file"
    )
