"""Exports fit to publish: how places and people are written.

places (where each file is):

- "absolute" — as this machine sees it: ``file:///home/ana/lab/data/raw/screen.csv`` for a file
  of a local storage root, ``s3://bucket/prefix/raw/screen.csv`` for a cloud one. Nothing else is
  changed.
- "relative" — the path under its storage root, the storage named by its uid, for every root:
  ``urn:flowprov:storage:<storage uid>/raw/screen.csv``. Names no machine, folder nor bucket.
- "storage" — storage URIs: ``s3://bucket/prefix/raw/screen.csv`` (``gs://``, ... as recorded)
  for cloud roots, which name no machine; a local root has no such URI, so its files take the
  relative form above.

A file under no declared root (the host root "/", e.g. a Nextflow work folder) has no path but
the machine's: in the relative and storage forms it is ``urn:flowprov:artifact:<artifact uid>``
(``/<path in the folder>`` for a file of a folder artifact).

An RO-Crate may give a File that is not in the crate an absolute URI only (a relative @id means
"in the crate", and the validator requires it there), hence the ``urn:`` form rather than a bare
relative path; copied files (with_data) are named by their place in the crate in every mode.
The crate's description lists the storages by uid and description.

With "relative" and "storage", free texts that may hold paths of this machine — a script's key
(its absolute location outside a repository), params, errors, environment file names — go
through `Portable.text`: each local storage root becomes its ``urn:`` form, the home folder
``~``, and any other absolute path ``…/<its last part>``.

people:

- "named" — handles and full names, as recorded.
- "pseudonymised" — each person is ``person-<10 hex>``: a keyed digest (BLAKE3, key = the
  instance's uid) of the user's uid, so the same person has the same pseudonym in every export
  of the instance, and members of the instance — who see the handles anyway — can tell who is
  who, but a reader of the export cannot (neither the instance uid nor user uids are in it). No
  handle, full name or user uid is written; handles and full names found in free texts are
  replaced by the pseudonym too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote, unquote

import blake3

STORAGE_URN = "urn:flowprov:storage:"
ARTIFACT_URN = "urn:flowprov:artifact:"  # a file under the host root "/": its path is the machine's

# an absolute POSIX path of two parts or more, not inside a URL or a relative path
_ABS_PATH = re.compile(r"(?<![\w.~:/@-])/(?:[^\s/\"'<>|:;,()\[\]{}`]+/)+[^\s/\"'<>|:;,()\[\]{}`]*")


def storage_uri(storage_uid: str, rel: str = "") -> str:
    """urn:flowprov:storage:<uid>/<rel> (rel percent-encoded, slashes kept)."""
    return f"{STORAGE_URN}{storage_uid}" + (f"/{quote(rel)}" if rel else "")


@dataclass
class Portable:
    places: str = "absolute"
    people: str = "named"
    _roots: list = field(default_factory=list)  # (root text, its replacement), longest first
    _names: list = field(default_factory=list)  # (compiled word pattern, pseudonym)
    storages: dict = field(default_factory=dict)  # uid → (description, is local) of files seen

    @classmethod
    def of(cls, places: str = "absolute", people: str = "named") -> Portable:
        return cls(places=places, people=people)

    @property
    def active(self) -> bool:
        return self.places != "absolute" or self.people != "named"

    @property
    def portable_places(self) -> bool:
        return self.places != "absolute"

    # -- places --------------------------------------------------------------------------------
    def uri(self, a, location: str) -> str:
        """The URI of the bytes at `location` (the artifact's own, or a file of its folder)."""
        from ..storage import StorageRoot

        if self.places == "absolute" or (self.places == "storage" and not a.is_local):
            return Path(location).as_uri() if a.is_local else location
        if a.is_local and a.root.rstrip("/") == "":  # outside every declared root: its uid
            part = location[len(a.location) :].lstrip("/")
            return f"{ARTIFACT_URN}{a.uid}" + (f"/{quote(part)}" if part else "")
        self.storages.setdefault(a.storage_uid, (a.storage_description, a.is_local))
        rel = StorageRoot(a.root).key_of(location) if a.is_local else None
        if rel is None:
            root = a.root.rstrip("/")
            rel = location[len(root) :].lstrip("/") if location.startswith(root) else None
        if rel is None:  # not under its root (cannot happen for a recorded artifact): its name
            rel = os.path.basename(location.rstrip("/"))
        return storage_uri(a.storage_uid, rel)

    # -- people --------------------------------------------------------------------------------
    def person(self, user, instance_uid: str):
        """The user as exported: itself, or its pseudonym (a UserInfo with no name)."""
        if user is None or self.people == "named":
            return user
        p = pseudonym(instance_uid, user.uid)
        for word in {user.handle, user.name, user.uid} - {None, ""}:
            if len(word) >= 2:
                self._names.append((re.compile(rf"(?<!\w){re.escape(word)}(?!\w)"), p))
        return replace(user, uid=p, handle=p, name=None, pseudonymous=True)

    def apply(self, info, instance_uid: str):
        """Details with their people pseudonymised (when asked) and the machine's roots known."""
        for a in info.artifacts.values():
            if a.is_local:
                self._add_root(a.root, storage_uri(a.storage_uid))
            elif self.places == "relative":
                self._add_root(a.root.rstrip("/"), storage_uri(a.storage_uid))
        if self.people == "named":
            return info
        info.artifacts = {
            k: replace(a, user=self.person(a.user, instance_uid)) for k, a in info.artifacts.items()
        }
        info.runs = {
            k: replace(r, user=self.person(r.user, instance_uid)) for k, r in info.runs.items()
        }
        return info

    def _add_root(self, root: str, replacement: str) -> None:
        if root and root != "/" and all(r != root for r, _ in self._roots):
            self._roots.append((root.rstrip("/") or root, replacement))
            self._roots.sort(key=lambda pair: -len(pair[0]))

    # -- free text -----------------------------------------------------------------------------
    def text(self, s: str) -> str:
        if not self.active or not isinstance(s, str):
            return s
        if self.portable_places:
            s = _FILE_URL.sub(self._file_url, s)
            for root, replacement in self._roots:
                s = s.replace(root, replacement)
            home = os.path.expanduser("~").rstrip("/")
            if home and home != "/":
                s = re.sub(rf"(?<![\w.~:/@-]){re.escape(home)}(?=/|\b|$)", "~", s)
            s = _ABS_PATH.sub(_last_part, s)
        for pattern, p in self._names:
            s = pattern.sub(p, s)
        return s

    def _file_url(self, m: re.Match) -> str:
        """A file:// URL in a text (a package installed from a folder): its storage form when
        under a storage root, else its last part."""
        path = unquote(m.group(1))
        for root, replacement in self._roots:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return replacement + quote(path[len(root.rstrip("/")) :])
        return _last_part(m)

    def walk(self, value):
        """`text` applied to every string of a JSON value (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.walk(v) for k, v in value.items()}
        return value

    def storages_note(self) -> str | None:
        if not self.storages:
            return None
        parts = [
            f"{storage_uri(uid)} = {desc or ('a local folder' if local else 'a cloud storage')}"
            for uid, (desc, local) in sorted(self.storages.items())
        ]
        return (
            "Files are named by their place under their storage's root, the storage by its uid: "
            + "; ".join(parts)
            + "."
        )


_FILE_URL = re.compile(r"file://(?:localhost)?(/[^\s\"'<>]*)")


def _last_part(m: re.Match) -> str:
    path = m.group(m.re.groups and 1 or 0).rstrip("/")
    return "…/" + path.rsplit("/", 1)[-1]


def pseudonym(instance_uid: str, user_uid: str) -> str:
    """person-<10 hex>: stable per instance and user, not reversible without the instance uid."""
    key = blake3.blake3(f"flowprov pseudonym key {instance_uid}".encode()).digest()
    return "person-" + blake3.blake3(user_uid.encode(), key=key).hexdigest()[:10]
