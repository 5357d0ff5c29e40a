"""The Prefect plugin's records are the same when a store writer process applies its events
(what a flow of more than a hundred tasks gets; here from its second event)."""

from __future__ import annotations

import logging

import pytest
from flowprov import store_writer
from flowprov_prefect import recorder

from tests.prefect import test_prefect_plugin as plain_tests


@pytest.fixture
def writer_from_the_start(monkeypatch):
    monkeypatch.setattr(store_writer, "WRITER_AFTER", 0)
    monkeypatch.setenv("FLOWPROV_STORE_WRITER", "on")
    used = []
    start = store_writer.Writer.__init__

    def noted(self):
        start(self)
        used.append(self)

    monkeypatch.setattr(store_writer.Writer, "__init__", noted)
    yield used
    recorder.close()  # the writer ends with its sink; the next test starts afresh


def test_flow_tasks_files_submit_and_map_through_a_writer(workdir, caplog, writer_from_the_start):
    plain_tests.test_flow_tasks_files_submit_and_map(workdir, caplog)
    assert len(writer_from_the_start) == 1  # one writer for the flow run and all its tasks
    assert writer_from_the_start[0].proc.poll() is None
    assert not [r for r in caplog.records if r.name == "flowprov" and r.levelno >= logging.INFO]


def test_a_failing_task_and_flow_through_a_writer(workdir, writer_from_the_start):
    plain_tests.test_a_task_that_fails_after_a_retry_and_a_flow_that_fails(workdir)
    assert len(writer_from_the_start) == 1
