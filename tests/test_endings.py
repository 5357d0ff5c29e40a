"""Every ending of a tracked script is recorded as it was, and the process ends as it would have.

Real scripts in real subprocesses; real signals sent to them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import flowprov as fp
import pytest

from tests.conftest import write


def _default_signals() -> None:
    """In the child: the dispositions a login shell gives a program (a test runner started under
    nohup or in the background would otherwise pass on ignored SIGHUP/SIGINT)."""
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, signal.SIG_DFL)


def _script(folder: Path, body: str, name: str = "step.py") -> Path:
    return write(folder / name, "import sys\nimport flowprov as fp\n\n" + textwrap.dedent(body))


def _run(script: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_default_signals,
    )


def _the_run(script: Path):
    return fp.Transform.filter(key=script.resolve().as_posix()).one().runs.one()


def _start(script: Path) -> subprocess.Popen:
    """Start a script that tracks, says "ready" and sleeps; return once it is tracked."""
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.poll() is not None else line
    return proc


SLEEPER = """
import time
fp.track()
print("ready", flush=True)
time.sleep(60)
"""


# sys.exit and its relatives, as scripts use them: (body, exit status, run status, error, exit)
EXITS = {
    "sys.exit(2)": ("fp.track()\nsys.exit(2)\n", 2, "failed", "exit code 2", {"code": 2}),
    "sys.exit(0)": ("fp.track()\nsys.exit(0)\n", 0, "completed", None, {"code": 0}),
    "sys.exit()": ("fp.track()\nsys.exit()\n", 0, "completed", None, {"code": 0}),
    "sys.exit(message)": (
        "fp.track()\nsys.exit('bad sample sheet')\n",
        1,
        "failed",
        "exit code 1: bad sample sheet",
        {"code": 1},
    ),
    "exit(3)": ("fp.track()\nexit(3)\n", 3, "failed", "exit code 3", {"code": 3}),
    "argparse error": (
        "import argparse\nfp.track()\nargparse.ArgumentParser().parse_args(['--nope'])\n",
        2,
        "failed",
        "exit code 2",
        {"code": 2},
    ),
    "exit in a function": (
        "def main():\n    sys.exit(5)\n\nfp.track()\nmain()\n",
        5,
        "failed",
        "exit code 5",
        {"code": 5},
    ),
    "caught exit, then the end": (
        "fp.track()\ntry:\n    sys.exit(4)\nexcept SystemExit:\n    pass\nx = 1\n",
        0,
        "completed",
        None,
        {"code": 0},
    ),
    "from sys import exit": (
        "from sys import exit\nfp.track()\nexit(0)\n",
        0,
        "completed",
        None,
        {"code": 0},
    ),
    # an error the program's own excepthook (installed after track()) showed: the ending cannot
    # be known, and is recorded as unknown rather than guessed
    "own excepthook": (
        "fp.track()\nsys.excepthook = lambda *exc: print('oops')\nraise ValueError('x')\n",
        1,
        "unknown",
        "its exit code is unknown",
        {"code": None},
    ),
    # the exit code of a SystemExit raised directly is not visible: never claim how it ended
    "raise SystemExit(6)": (
        "fp.track()\nraise SystemExit(6)\n",
        6,
        "unknown",
        "its exit code is unknown",
        {"code": None},
    ),
}


@pytest.mark.parametrize("case", list(EXITS))
def test_exit_codes_are_recorded(sqlite_instance, fp_env, case):
    body, code, status, error, exit = EXITS[case]
    script = _script(fp_env, body)
    proc = _run(script)
    assert proc.returncode == code, proc.stderr
    run = _the_run(script)
    assert run.status == status and run.finished_at is not None, run.error
    assert (run.error is None) if error is None else (error in run.error)
    assert run.runtime == {"exit": exit} and run.environment.interpreter.startswith("CPython")


def test_exit_code_on_both_backends(instance, fp_env):
    script = _script(fp_env, "fp.track()\nprint('working')\nsys.exit(2)\n")
    proc = _run(script)
    assert proc.returncode == 2 and "working" in proc.stdout
    assert "Traceback" not in proc.stderr  # nothing said at exit but the run's end
    assert not list((fp_env / "cache" / "journal").glob("*.jsonl"))  # all applied, none left
    run = _the_run(script)
    assert run.status == "failed" and run.error == "exit code 2"
    assert run.runtime["exit"] == {"code": 2}


def test_uncaught_exception_and_keyboard_interrupt(sqlite_instance, fp_env):
    crash = _script(fp_env, "fp.track()\nraise ValueError('no reads')\n", "crash.py")
    proc = _run(crash)
    assert proc.returncode == 1 and "ValueError: no reads" in proc.stderr
    run = _the_run(crash)
    assert run.status == "failed" and "ValueError: no reads" in run.error
    assert run.runtime["exit"] == {"code": 1}

    ctrl_c = _script(fp_env, "fp.track()\nraise KeyboardInterrupt\n", "ctrl_c.py")
    proc = _run(ctrl_c)
    assert proc.returncode == -signal.SIGINT  # Python dies of SIGINT, as without flowprov
    run = _the_run(ctrl_c)
    assert run.status == "aborted" and run.error.startswith("interrupted by SIGINT")
    assert run.runtime["exit"] == {"signal": "SIGINT"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_are_recorded_and_the_process_dies_of_them(instance, fp_env, sig):
    script = _script(fp_env, SLEEPER)
    proc = _start(script)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == -sig  # the shell / SLURM sees the same death
    run = _the_run(script)
    assert run.status == "aborted" and run.finished_at is not None
    if sig == signal.SIGINT:  # Python's own handler: KeyboardInterrupt
        assert run.error.startswith("interrupted by SIGINT")
    else:
        assert run.error == f"terminated by {sig.name}"
    assert run.runtime["exit"] == {"signal": sig.name}


def test_sigint_with_the_default_action(sqlite_instance, fp_env):
    """A program that set SIGINT back to the default action dies of it, recorded first."""
    script = _script(
        fp_env, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_DFL)\n" + SLEEPER
    )
    proc = _start(script)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == -signal.SIGINT
    run = _the_run(script)
    assert run.status == "aborted" and run.error == "terminated by SIGINT"


def test_the_programs_own_handler_before_track_is_called(sqlite_instance, fp_env):
    script = _script(
        fp_env,
        """
        import signal, time
        def on_term(signum, frame):
            print("cleaning up", flush=True)
            sys.exit(143)
        signal.signal(signal.SIGTERM, on_term)
        fp.track()
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    proc = _start(script)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143 and proc.stdout.read() == "cleaning up\n"
    run = _the_run(script)
    assert run.status == "failed" and run.error == "exit code 143 (after SIGTERM)"
    assert run.runtime["exit"] == {"code": 143, "signal_received": "SIGTERM"}


def test_a_handler_installed_after_track_is_not_broken(sqlite_instance, fp_env):
    script = _script(
        fp_env,
        """
        import signal, time
        fp.track()
        stop = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
        print("ready", flush=True)
        while not stop:
            time.sleep(0.05)
        print("stopped cleanly", flush=True)
        """,
    )
    proc = _start(script)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0 and proc.stdout.read() == "stopped cleanly\n"
    assert _the_run(script).status == "completed"


def test_ignored_signal_stays_ignored(sqlite_instance, fp_env):
    """`nohup`: SIGHUP ignored before the program starts is still ignored when it is tracked."""
    script = _script(
        fp_env,
        """
        import signal, time
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        fp.track()
        print("ready", flush=True)
        time.sleep(1.5)
        """,
    )
    proc = _start(script)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=60) == 0
    assert _the_run(script).status == "completed"


def test_a_forked_child_does_not_end_the_parents_run(sqlite_instance, fp_env):
    script = _script(
        fp_env,
        """
        import os, time
        fp.track()
        pid = os.fork()
        if pid == 0:
            sys.exit(3)  # the child's ending is not the tracked script's
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
        print("ready", flush=True)
        """,
    )
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert _the_run(script).status == "completed"


def test_a_sigkilled_run_shows_as_unfinished(instance, fp_env, run_flowprov):
    script = _script(fp_env, SLEEPER)
    proc = _start(script)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    run = _the_run(script)
    assert run.status == "started" and run.finished_at is None
    listed = run_flowprov("ls", "runs", "--filter", "status=started").stdout
    assert run.uid in listed
    assert run.uid not in run_flowprov("ls", "runs", "--filter", "status=completed").stdout
    help_text = run_flowprov("ls", "--help").stdout
    if "--status" in help_text:  # the shorthand, where the CLI has it
        assert run.uid in run_flowprov("ls", "runs", "--status", "started").stdout


def test_sigterm_inside_a_store_write(sqlite_instance, fp_env, run_flowprov):
    """SIGTERM while the script sits in flowprov writes: it dies at once (no wait for the write
    lock its own interrupted transaction holds), and its end is recorded — in the store, or on
    local disk for `flowprov replay` when it was stopped inside a database call."""
    script = _script(
        fp_env,
        """
        from pathlib import Path
        fp.track()
        for i in range(50):
            Path(f"f{i}.txt").write_text(str(i))
        print("ready", flush=True)
        while True:
            for i in range(50):
                fp.Artifact(f"f{i}.txt", description=f"f{i}").save()
        """,
    )
    log = fp_env / "stderr.txt"  # a line per save: a pipe nobody reads would fill and block
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=script.parent,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=_default_signals,
        )
    assert proc.stdout.readline().strip() == "ready", log.read_text()
    time.sleep(1)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == -signal.SIGTERM, log.read_text()[-3000:]
    assert time.monotonic() - start < 10  # not the 30 s of SQLite's busy timeout
    run_flowprov("replay")
    run = _the_run(script)
    assert run.status == "aborted" and run.error == "terminated by SIGTERM"


def test_track_from_a_thread_installs_no_signal_handler(sqlite_instance, fp_env):
    script = _script(
        fp_env,
        """
        import signal, threading
        t = threading.Thread(target=fp.track)
        t.start(); t.join()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        """,
    )
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert _the_run(script).status == "completed"
