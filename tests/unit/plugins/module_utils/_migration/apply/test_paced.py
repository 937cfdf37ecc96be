"""Rounds of per-document calls sized by what the calls before them cost (apply/phases/paced.py)."""

from __future__ import annotations

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases import paced
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.paced import (
    Pacer,
    run_paced,
)


def test_rounds_grow_at_most_twofold_and_settle_where_the_budget_is_spent():
    pacer = Pacer(budget=0.010, first=16)
    sizes = []
    for _round in range(8):
        size = pacer.take(10_000)
        sizes.append(size)
        pacer.record(size, size * 0.0001)  # 0.1 ms a call: 100 calls fill 10 ms
    assert sizes == [16, 32, 64, 100, 100, 100, 100, 100]


def test_a_slow_round_shrinks_the_next_at_once_and_the_estimate_fades_back():
    pacer = Pacer(budget=0.010, first=100)
    pacer.record(100, 0.010)
    assert pacer.take(10_000) == 100
    pacer.record(100, 0.050)  # the server got slower (or busier): 0.5 ms a call
    assert pacer.take(10_000) == 20
    sizes = []
    for _round in range(6):
        size = pacer.take(10_000)
        sizes.append(size)
        pacer.record(size, size * 0.0001)
    # Back towards 100 by a quarter of the estimate a round, never above twice the round before.
    assert sizes == [20, 26, 35, 47, 63, 84]


def test_a_round_never_exceeds_what_is_left_nor_falls_below_one_call():
    pacer = Pacer(budget=0.010, first=16)
    assert pacer.take(3) == 3
    pacer.record(1, 1.0)  # one call over the whole budget
    assert pacer.take(500) == 1
    pacer.record(0, 0.0)  # nothing sent: nothing learnt
    assert pacer.take(500) == 1


class _Clock:
    now = 0.0

    def perf_counter(self):
        return self.now


class _Pipeline:
    def __init__(self, client):
        self.client, self.sent = client, []

    def execute(self):
        self.client.rounds.append([key for key, _args in self.sent])
        self.client.clock.now += 0.001 * len(self.sent)  # 1 ms a call
        return [f"done {key}" for key, _args in self.sent]


class _Client:
    def __init__(self):
        self.rounds, self.clock = [], _Clock()

    def pipeline(self, transaction=True):
        assert transaction is False
        return _Pipeline(self)


def _script(keys, args, client):
    client.sent.append((keys[0], args))


def test_run_paced_sends_every_call_once_in_order_in_rounds_of_the_budget(monkeypatch):
    client = _Client()
    monkeypatch.setattr(paced, "time", client.clock)
    calls = [(_script, [f"k{i}"], [b"W"]) for i in range(50)]
    replies = run_paced(client, calls, Pacer(budget=0.010, first=4))
    assert replies == [f"done k{i}" for i in range(50)]
    assert [key for sent in client.rounds for key in sent] == [f"k{i}" for i in range(50)]
    # 4, then 8, then 10 calls of 1 ms: the 10 ms budget.
    assert [len(sent) for sent in client.rounds] == [4, 8, 10, 10, 10, 8]
    assert run_paced(client, [], Pacer()) == []
