"""`flowprov serve` as a user starts it: the installed command in a subprocess, on loopback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.services import free_port, wait_for_port

# the installed command, as a user types it (not `python -m`)
FLOWPROV = Path(sys.executable).with_name("flowprov")


@contextlib.contextmanager
def serving(*args: str, env: dict | None = None, cwd=None, as_typed: bool = False):
    """Runs `flowprov serve --port P ARGS` until the block ends; yields the base URL (loopback).
    as_typed: `flowprov serve ARGS` exactly, on its default port 8700."""
    port = 8700 if as_typed else free_port()
    e = dict(os.environ)
    e.update(env or {})
    log = open(Path(cwd or ".") / f"serve-{port}.log", "w+b") if cwd else subprocess.DEVNULL
    cmd = [str(FLOWPROV), "serve", *([] if as_typed else ["--port", str(port)]), *args]
    proc = subprocess.Popen(cmd, env=e, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_port(port, proc, "flowprov serve", timeout=60)
        except RuntimeError as err:
            output = ""
            if cwd:
                log.seek(0)
                output = log.read().decode(errors="replace")
            raise AssertionError(f"{err}: {output}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if cwd:
            log.close()


def get(url: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, str]:
    """(status, headers, body) of one request; an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def navigate(browser, act) -> None:
    """Do `act()` (a click, a keystroke that sends a form) and wait until the browser is on the
    new page and has loaded it: the navigation may finish after the click or keystroke returns,
    and reading the page before then reads the old one (CI saw it)."""
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    before = browser.current_url
    act()
    wait = WebDriverWait(browser, 30)
    wait.until(EC.url_changes(before))
    wait.until(lambda b: b.execute_script("return document.readyState") == "complete")
