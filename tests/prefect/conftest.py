"""Real Prefect 3 flows. Prefect starts one temporary local server for the test session."""

import os
import tempfile

import pytest

# before Prefect is imported: its settings are read then
_home = tempfile.mkdtemp(prefix="flowprov-prefect-home-")
os.environ.setdefault("PREFECT_HOME", _home)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
# Prefect's own INFO lines (and its "Stopping temporary server" line printed after pytest has
# closed its capture streams) are noise here; flowprov's silence at INFO is asserted with caplog
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

try:
    import prefect  # noqa: F401
except ImportError:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise  # CI installs flowprov[test], which includes Prefect
    pytest.skip(
        "Prefect is not installed (pip install 'flowprov[prefect]')", allow_module_level=True
    )


@pytest.fixture
def workdir(instance, fp_env, monkeypatch):
    """A folder to run flows in (it becomes a storage root for in-place registration)."""
    d = fp_env / "analysis"
    d.mkdir()
    monkeypatch.chdir(d)
    return d
