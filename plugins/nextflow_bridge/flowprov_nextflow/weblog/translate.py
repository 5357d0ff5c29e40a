"""Weblog envelopes → flowprov events (being written by the lead; interface below is fixed)."""

from __future__ import annotations


class Translator:
    """Envelopes → events, launch by launch. All state is a cache of what the store holds (plus
    the batch in hand): after a failed apply, `reset()` and translate the same envelopes again.

    `translate(envelopes)` takes a list of WeblogEvent (in journal order) and returns the list of
    flowprov events to apply in one transaction. Never raises on a well-formed envelope; what it
    cannot use is counted in `self.ignored` ({reason: n})."""

    def __init__(self, instance=None, *, read_workdirs: bool = True):
        self.instance = instance
        self.read_workdirs = read_workdirs
        self.ignored: dict[str, int] = {}

    def reset(self) -> None:
        raise NotImplementedError

    def translate(self, envelopes: list) -> list:
        raise NotImplementedError
