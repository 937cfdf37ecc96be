"""The module's end of the progress channel: what it writes, when it asks the run to stop, and the stop itself."""

from __future__ import annotations

import json
import os
import time

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils import _progress_channel as channel
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import progress
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import StopRequested


@pytest.fixture(autouse=True)
def no_listener_no_stop(monkeypatch):
    monkeypatch.setattr(progress, "_listener", None)
    monkeypatch.setattr(progress, "_stop_reason", None)


@pytest.mark.parametrize(
    "counters, expected",
    [
        ({"documents": 500, "blocks": 1, "documents_total": 1000}, (500, 1000)),
        ({"blocks_done": 3, "blocks": 4, "documents_total": 1000}, (750, 1000)),
        ({"num_docs": 900, "percent_indexed": 0.9, "documents_total": 1000}, (900, 1000)),
        ({"documents_total": 1000}, (None, 1000)),
    ],
)
def test_documents_done_of_each_kind_of_phase(counters, expected):
    assert channel.documents_done(counters) == expected


def test_the_channel_writes_the_latest_progress(tmp_path):
    listener = channel.Channel(str(tmp_path))
    listener("products", "backup", {"documents": 500, "documents_total": 1000})
    listener("products", "backup", {"documents": 600, "documents_total": 1000})  # within a second: not written
    written = json.loads((tmp_path / channel.PROGRESS_FILE).read_text())
    assert (written["index"], written["phase"], written["done"], written["total"]) == ("products", "backup", 500, 1000)
    listener("products", "quantize", {"blocks_done": 1, "blocks": 2, "documents_total": 1000})  # a new phase: at once
    assert json.loads((tmp_path / channel.PROGRESS_FILE).read_text())["done"] == 500


def test_a_stop_order_stops_the_run_at_its_next_report(tmp_path):
    progress.listen(channel.Channel(str(tmp_path)))
    (tmp_path / channel.CONTROL_FILE).write_text("run")
    progress.report("products", "backup", documents=1)  # the job lives: goes on
    (tmp_path / channel.CONTROL_FILE).write_text("stop its job was cancelled")
    with pytest.raises(StopRequested) as stopped:
        progress.report("products", "backup", documents=2)
    assert str(stopped.value).startswith("it was asked to stop: its job was cancelled;")
    assert "run the same task again to resume" in str(stopped.value)


def test_a_control_file_left_alone_too_long_stops_the_run(tmp_path):
    progress.listen(channel.Channel(str(tmp_path)))
    control = tmp_path / channel.CONTROL_FILE
    control.write_text("run")
    old = time.time() - channel.STALE_SECONDS - 5
    os.utime(control, (old, old))
    with pytest.raises(StopRequested, match="has not been heard from"):
        progress.report("products", "quantize", blocks_done=1, blocks=2)


def test_without_a_listener_or_a_request_a_report_does_nothing():
    progress.report("products", "backup", documents=1)
