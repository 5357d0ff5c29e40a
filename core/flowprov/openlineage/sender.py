"""The OpenLineage sender: a child process that builds and sends the events of a busy engine.

Building an event (reading the run from the store, making the client's models) and sending it
(the client serialises it and writes or posts it) takes a millisecond or two of Python. In the
engine's own process that time is taken from the engine — threads share one interpreter lock —
so once a process has more than a few runs to tell (a Snakemake workflow, a Prefect flow, a
Nextflow listener), emitter.py starts this process and hands it each batch of signals as one
JSON line on its stdin. It handles them in order, with the same code the in-process path uses
(emitter._Emitter: spooling included), and answers `{"sync": n}` with `n` on its stdout once
everything before it is sent. At end of input it closes the client and exits.

    python -m flowprov.openlineage.sender      # started by flowprov, not by hand
"""

from __future__ import annotations

import json
import logging
import os
import sys


def main() -> int:
    from .emitter import _Emitter, decode_signal

    log = logging.getLogger("flowprov")
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("flowprov: %(message)s"))
    log.addHandler(h)
    log.setLevel(logging.WARNING)
    log.propagate = False

    emitter = _Emitter()
    emitter.exiting = True  # handle each batch here, in this thread
    buf = b""
    while True:
        data = os.read(0, 1 << 16)  # what has arrived: several batches handled as one
        if not data:
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        pending: list = []  # (instance path, signals) of consecutive lines
        for line in lines:
            if not line.strip():
                continue
            msg = json.loads(line)
            if "sync" in msg:
                _handle(emitter, pending)
                os.write(1, f"{msg['sync']}\n".encode())
                continue
            pending.append((msg["instance"], [decode_signal(s) for s in msg["signals"]]))
        _handle(emitter, pending)
    emitter.at_exit()
    return 0


def _handle(emitter, pending: list) -> None:
    """Handle the batches, those of one instance in a row as one."""
    from ..instance import current

    while pending:
        where, signals = pending.pop(0)
        while pending and pending[0][0] == where:
            signals += pending.pop(0)[1]
        emitter._handle(current(where), signals)


if __name__ == "__main__":
    sys.exit(main())
