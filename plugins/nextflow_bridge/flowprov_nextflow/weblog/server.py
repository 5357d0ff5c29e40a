"""The receiver's HTTP side (aiohttp): check each POST, journal it, acknowledge — nothing else in
the request's path. Applying runs in a child process (applier.py) that tails the journal.

- POST (any path): 200 once the body is journaled; 400 with the reason for a malformed or
  oversized body (logged, nothing written); 401 without the right token; an unknown event kind
  is counted and acknowledged, not journaled (Nextflow drops an event whose POST fails, and never
  retries: refuse only what is not a weblog event).
- GET /status: counters as JSON (accepted, applied, pending, rejected, ignored, refused, the
  store's state) for `flowprov status` and tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
import signal
import sys
import time
from pathlib import Path

from aiohttp import web
from flowprov.errors import FlowprovError
from flowprov.netbind import is_loopback

from .envelope import MAX_BODY, EnvelopeError, parse_body
from .journal import Journal, JournalError, Writer

logger = logging.getLogger("flowprov.weblog")

STATUS_PATH = "/status"
APPLIER_RESTART = 2.0  # seconds before an applier that died is started again (doubling, ≤ 60)
STOP_WAIT = 60.0  # seconds a stopping receiver gives its applier to drain the journal


class ReceiverError(FlowprovError):
    """The receiver cannot start as asked (an unsafe bind, a bad token, a port in use)."""


def check_bind(host: str, token: str | None) -> bytes | None:
    """The expected credentials (b"USER:PASSWORD"), or None; refuses an open non-loopback bind."""
    if token is not None:
        user, sep, password = token.partition(":")
        if not sep or not user or not password:
            raise ReceiverError(
                "--token must be USER:PASSWORD (what Nextflow's weblog.basicToken holds)"
            )
    if token is None and not is_loopback(host):
        raise ReceiverError(
            f"--host {host} is not a loopback address: give --token USER:PASSWORD (or set "
            "FLOWPROV_WEBLOG_TOKEN), so that only pipelines that know it can write to the store; "
            "Nextflow sends it with weblog.basicToken"
        )
    return token.encode() if token is not None else None


class Receiver:
    def __init__(self, journal: Journal, *, token: bytes | None = None, fsync: bool = False):
        self.journal = journal
        self.token = token
        self.writer = Writer(journal, fsync=fsync)
        if self.writer.dropped_tail:
            logger.warning(
                "the journal's last line was cut short (%d bytes, never acknowledged): dropped",
                self.writer.dropped_tail,
            )
        self.started_at = time.time()
        self.accepted = 0
        self.ignored: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.applier_pid: int | None = None
        self.applier_restarts = 0

    # -- HTTP ----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._auth])
        app.router.add_get(STATUS_PATH, self.status)
        app.router.add_post("/{tail:.*}", self.post)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self.token is not None and not self._authorized(request.headers.get("Authorization")):
            self._refuse("unauthorized", request, "missing or wrong credentials")
            return web.Response(
                status=401,
                text="401: missing or wrong credentials (weblog.basicToken)\n",
                headers={"WWW-Authenticate": 'Basic realm="flowprov"'},
            )
        return await handler(request)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self.token)

    def _refuse(self, reason: str, request: web.Request, detail: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        logger.warning("refused a %s from %s: %s", request.method, request.remote, detail[:300])

    async def post(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._bad(
                request,
                "too_large",
                f"body of {request.content_length} bytes is over the {MAX_BODY}-byte limit",
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._bad(request, "too_large", f"body over the {MAX_BODY}-byte limit")
        try:
            ev = parse_body(body)
        except EnvelopeError as e:
            return self._bad(request, "malformed", str(e))
        if not ev.known:
            self.ignored[ev.event] = self.ignored.get(ev.event, 0) + 1
            return web.Response(text="ignored: unknown event kind\n")
        try:
            seq = self.writer.append(body)
        except OSError as e:  # disk full: Nextflow logs the failed POST; nothing half-written
            logger.error("cannot journal an event (%s): answered 503", e)
            self.refused["journal_error"] = self.refused.get("journal_error", 0) + 1
            return web.Response(status=503, text=f"503: cannot journal the event: {e.strerror}\n")
        self.accepted += 1
        return web.Response(text=f"ok {seq}\n")  # the event's number in the journal

    def _bad(self, request: web.Request, reason: str, detail: str) -> web.Response:
        self._refuse(reason, request, detail)
        resp = web.Response(status=400, text=f"400: {detail}\n")
        if reason == "too_large":
            resp.force_close()  # the rest of the body is not read
        return resp

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.counters())

    def counters(self) -> dict:
        try:
            state = self.journal.load_applied()
        except JournalError:
            state = {}
        applied_seq = int(state.get("seq", self.journal.applied_position(state).seq))
        return {
            "accepted": self.accepted,
            "journaled": self.writer.next_seq,
            "applied": int(state.get("applied", 0)),
            "pending": max(0, self.writer.next_seq - applied_seq),
            "rejected": int(state.get("rejected", 0)),
            "ignored": dict(self.ignored),
            "skipped_in_journal": state.get("skipped", {}),
            "translator_ignored": state.get("translator_ignored", {}),
            "refused": dict(self.refused),
            "store": state.get("store", "unknown"),
            "store_error": state.get("store_error"),
            "journal": str(self.journal.path),
            "applier_pid": self.applier_pid,
            "applier_restarts": self.applier_restarts,
            "pid": os.getpid(),
            "up_seconds": round(time.time() - self.started_at, 1),
        }

    # -- the applier child ---------------------------------------------------------------------
    async def keep_applier(self, env: dict, stopping: asyncio.Event) -> None:
        """Run the applier child; start it again (with a growing delay) if it dies; on stop,
        close its stdin and give it STOP_WAIT seconds to drain the journal."""
        delay = APPLIER_RESTART
        while not stopping.is_set():
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "flowprov_nextflow.weblog.applier",
                "--journal",
                str(self.journal.path),
                "--parent",
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                env=env,
            )
            self.applier_pid = proc.pid
            began = time.monotonic()
            waiter = asyncio.ensure_future(proc.wait())
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.is_set():
                stop.cancel()
                proc.stdin.close()
                try:
                    await asyncio.wait_for(waiter, STOP_WAIT)
                except TimeoutError:
                    logger.warning("the applier did not finish in %.0f s: stopped", STOP_WAIT)
                    proc.kill()
                    await waiter
                return
            stop.cancel()
            self.applier_pid = None
            self.applier_restarts += 1
            if time.monotonic() - began > 60:
                delay = APPLIER_RESTART
            logger.error(
                "the applier exited with %s: starting it again in %.0f s (events keep being "
                "journaled)",
                proc.returncode,
                delay,
            )
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 60)


async def serve(
    journal_dir: Path,
    host: str,
    port: int,
    token: bytes | None,
    *,
    instance_config: Path,
    fsync: bool = False,
    announce=print,
) -> None:
    journal = Journal(journal_dir).create()
    lock = journal.lock("receiver")
    try:
        receiver = Receiver(journal, token=token, fsync=fsync)
        runner = web.AppRunner(receiver.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ReceiverError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        bound = site._server.sockets[0].getsockname()[1] if site._server else port
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        env = dict(os.environ, FLOWPROV_INSTANCE=str(instance_config))
        applier = asyncio.ensure_future(receiver.keep_applier(env, stopping))
        shown = f"[{host}]" if ":" in host else host
        announce(
            f"listening on http://{shown}:{bound}/ (journal {journal.path}); point Nextflow at it "
            f"with -with-weblog http://{shown}:{bound}/ — GET {STATUS_PATH} for counters"
        )
        await stopping.wait()
        logger.warning("stopping: no more events accepted; applying what the journal holds")
        await site.stop()
        await applier
        await runner.cleanup()
        receiver.writer.close()
        c = receiver.counters()
        logger.warning(
            "stopped: %d accepted, %d applied, %d pending in the journal, %d rejected",
            c["accepted"],
            c["applied"],
            c["pending"],
            c["rejected"],
        )
    finally:
        lock.release()
