"""The progress lines of the long modules' action plugin: their text, the estimate, how often they come."""

from __future__ import annotations

import pytest

from ansible_collections.indexops.redis_search.plugins.plugin_utils import _progress_action as action


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (59.6, "1 min 0 s"), (184, "3 min 4 s"), (7500, "2 h 5 min")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert action.duration(seconds) == text


def test_a_line_says_phase_documents_percent_elapsed_and_what_is_left():
    record = {"index": "products", "phase": "quantize", "done": 40_000, "total": 100_000}
    assert (
        action.progress_line("redis1", record, 52, 78)
        == "redis1 products: quantize 40000/100000 documents (40%), 52 s elapsed, about 1 min 18 s left"
    )
    assert action.progress_line("redis1", {"index": "p", "phase": "drop", "done": None}, 3, None) == (
        "redis1 p: drop, 3 s elapsed"
    )


def test_the_estimate_comes_from_the_rate_since_the_phase_was_first_seen():
    rate = action.Rate()
    key = ("products", "backup")
    assert rate.remaining(key, 100.0, 10_000, 100_000) is None  # first look: no rate yet
    assert rate.remaining(key, 105.0, 10_000, 100_000) is None  # no progress: no estimate
    assert rate.remaining(key, 110.0, 30_000, 100_000) == pytest.approx(35.0)  # 2000 documents/s, 70000 left


@pytest.mark.parametrize(
    "given, seconds", [(None, 5.0), ("1", 1.0), ("0", 0.5), ("60", 10.0), ("x", 5.0), ("nan", 5.0)]
)
def test_lines_come_at_least_every_10_seconds(monkeypatch, given, seconds):
    if given is None:
        monkeypatch.delenv(action.POLL_ENV, raising=False)
    else:
        monkeypatch.setenv(action.POLL_ENV, given)
    assert action.poll_seconds() == seconds
