"""The pure pieces of batch migrations: selection files, prefix overlaps, the sealed plan, the state
machine and its readable status."""

from __future__ import annotations

import json

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch.plan import (
    BatchEntry,
    BatchPlan,
    Selection,
    batch_plan_from_dict,
    overlapping_pairs,
    read_index_file,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch.state import (
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    default_paths,
    locate_state,
    new_state,
    overall_status,
    read_state,
    require_same_batch,
    save_state,
    work_list,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch.status import describe, next_steps
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    PlanInvalid,
    PreflightFailed,
    SchemaInvalid,
)


def entry(name, prefixes, storage="hash", applicable=True):
    return BatchEntry(
        name=name,
        applicable=applicable,
        storage=storage,
        prefixes=prefixes,
        skip_reason=None if applicable else "no vec",
        plan_checksum=f"sha256:{name}" if applicable else None,
    )


def batch(*entries, policy="fail_fast"):
    names = [e.name for e in entries]
    return BatchPlan(
        created_at="2026-01-01T00:00:00+00:00",
        endpoint="127.0.0.1:6379",
        failure_policy=policy,
        selection=Selection(kind="list", value=names, names=names),
        patch={"version": 1, "changes": {}},
        indexes=list(entries),
    ).seal()


# --- selection and overlaps --------------------------------------------------------------------------------


def test_index_file_ignores_blanks_comments_and_spaces(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("# prod\nidx_a\n\n   idx_b  \n  # not this\nidx_c\n", encoding="utf-8")
    assert read_index_file(str(path)) == ["idx_a", "idx_b", "idx_c"]
    with pytest.raises(SchemaInvalid, match="cannot read indexes_file"):
        read_index_file(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize(
    "left, right, overlap",
    [
        (["doc:"], ["doc:premium:"], True),  # one is a string prefix of the other
        (["doc:premium:"], ["doc:"], True),
        (["doc:"], ["doc:"], True),
        (["doc:"], ["docs:"], False),  # 'docs:' does not start with 'doc:'
        (["a:", "b:"], ["c:", "b:x"], True),  # any pair of a multi-prefix index
        ([""], ["anything:"], True),  # the empty prefix covers every key
    ],
)
def test_overlap_follows_ft_create_prefix_semantics(left, right, overlap):
    found = overlapping_pairs([entry("one", left), entry("two", right)])
    assert bool(found) is overlap
    if overlap:
        assert found[0].indexes == ["one", "two"] and found[0].kind == "overlapping_prefixes"


def test_overlap_needs_the_same_key_type_and_two_applicable_indexes():
    assert overlapping_pairs([entry("h", ["doc:"]), entry("j", ["doc:"], storage="json")]) == []
    assert overlapping_pairs([entry("h", ["doc:"]), entry("s", ["doc:"], applicable=False)]) == []


def test_overlap_after_the_prefix_changes_is_a_conflict():
    onto_m = [entry("a", ["a:"]), entry("b", ["b:"])]
    for one in onto_m:
        one.target_prefixes = ["m:"]
    [found] = overlapping_pairs(onto_m)
    assert found.indexes == ["a", "b"] and "'m:' <-> 'm:' once the prefix changes are applied" in found.reason
    into_b = [entry("a", ["a:"]), entry("b", ["b:"])]
    into_b[0].target_prefixes = ["b:x:"]  # a's keys would move under b's prefix
    assert overlapping_pairs(into_b)[0].reason.startswith("a <-> b: 'b:x:' <-> 'b:'")
    apart = [entry("a", ["a:"]), entry("b", ["b:"])]
    apart[0].target_prefixes = ["m:"]
    assert overlapping_pairs(apart) == []


# --- the sealed batch plan -----------------------------------------------------------------------------------


def test_an_edited_batch_plan_is_refused():
    plan = batch(entry("a", ["a:"], applicable=False), policy="continue_on_error")
    data = json.loads(json.dumps(plan.to_dict()))
    assert batch_plan_from_dict(data).batch_id == plan.checksum[7:19]
    data["failure_policy"] = "fail_fast"
    with pytest.raises(PlanInvalid, match="changed after it was written"):
        batch_plan_from_dict(data)
    with pytest.raises(PlanInvalid, match="not an indexops.redis_search batch plan"):
        batch_plan_from_dict({"format": "indexops.redis_search/plan"})


def test_an_entry_whose_plan_was_swapped_is_refused():
    data = batch(entry("a", ["a:"])).to_dict()
    data["indexes"][0]["plan"] = {"format": "indexops.redis_search/plan", "format_version": 1}
    data["checksum"] = BatchPlan.model_validate(data).content_checksum()  # re-sealed by hand
    with pytest.raises(PlanInvalid, match="plan of a is malformed"):
        batch_plan_from_dict(data)


# --- the state machine ---------------------------------------------------------------------------------------


def started(tmp_path):
    plan = batch(entry("a", ["a:"]), entry("b", ["b:"]), entry("c", ["c:"]), entry("z", ["z:"], applicable=False))
    return plan, new_state(plan, str(tmp_path / "batch.yaml"), str(tmp_path / "backups"))


def test_a_new_state_is_pending_but_for_skipped_indexes(tmp_path):
    _plan, state = started(tmp_path)
    assert [(r.name, r.status) for r in state.indexes] == [
        ("a", PENDING),
        ("b", PENDING),
        ("c", PENDING),
        ("z", "skipped"),
    ]
    assert overall_status(state) == "not_started"
    assert [r.name for r in work_list(state, retry_failed=False)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "statuses, retry, todo, overall",
    [
        ((SUCCEEDED, RUNNING, PENDING), False, ["b", "c"], "running"),  # killed in b: b continues
        ((FAILED, PENDING, PENDING), False, ["b", "c"], "failed"),  # fail_fast stopped at a
        ((FAILED, PENDING, PENDING), True, ["a", "b", "c"], "failed"),
        ((FAILED, SUCCEEDED, SUCCEEDED), False, [], "partial_failure"),
        ((FAILED, SUCCEEDED, SUCCEEDED), True, ["a"], "partial_failure"),
        ((SUCCEEDED, SUCCEEDED, SUCCEEDED), True, [], "completed"),
        ((SUCCEEDED, PENDING, PENDING), False, ["b", "c"], "running"),  # killed between indexes
    ],
)
def test_work_list_and_overall_status(tmp_path, statuses, retry, todo, overall):
    _plan, state = started(tmp_path)
    for run, status in zip(state.indexes, statuses):
        run.status = status
    assert [r.name for r in work_list(state, retry)] == todo
    assert overall_status(state) == overall


def test_state_round_trips_and_refuses_edits(tmp_path):
    _plan, state = started(tmp_path)
    path = str(tmp_path / "batch.state.json")
    save_state(state, path)
    assert read_state(path).model_dump() == state.model_dump()
    data = json.loads(open(path, encoding="utf-8").read())
    data["indexes"][0]["status"] = SUCCEEDED  # "done", by hand
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    with pytest.raises(PlanInvalid, match="changed outside this collection"):
        read_state(path)


def test_a_state_continues_only_its_own_plan_and_backup_dir(tmp_path):
    plan, state = started(tmp_path)
    require_same_batch(state, plan, str(tmp_path / "backups"), "s")
    require_same_batch(state, plan, None, "s")  # the state's own directory
    with pytest.raises(PreflightFailed, match="was started with backup_dir"):
        require_same_batch(state, plan, str(tmp_path / "other"), "s")
    with pytest.raises(PreflightFailed, match=f"belongs to batch {state.batch_id}, not to this batch plan"):
        require_same_batch(state, batch(entry("a", ["a:"])), None, "s")


def test_state_and_report_live_beside_the_plan_unless_named(tmp_path):
    assert default_paths("/x/quantize.yaml") == ("/x/quantize.state.json", "/x/quantize.report.yaml")
    assert default_paths("/x/plan") == ("/x/plan.state.json", "/x/plan.report.yaml")
    assert locate_state("/x/p.yaml", "/y/run.state.json") == ("/y/run.state.json", "/y/run.report.yaml")
    with pytest.raises(PlanInvalid):
        locate_state(None, None)


# --- the readable status ---------------------------------------------------------------------------------------


def test_status_of_a_batch_not_started_says_what_applying_does(tmp_path):
    _plan, state = started(tmp_path)
    status = describe(state, "s.json")
    assert status["result"] == "not_started" and status["failures"] == []
    assert status["next"] == ["state=applied migrates a", "state=applied migrates b", "state=applied migrates c"]


def test_status_names_the_failure_and_what_resume_would_do(tmp_path):
    _plan, state = started(tmp_path)
    state.indexes[0].status, state.indexes[0].error = FAILED, {"message": "migration stopped in phase create: boom"}
    state.indexes[1].status, state.indexes[1].result, state.indexes[1].documents = SUCCEEDED, "succeeded", 12
    status = describe(state, "s.json")
    assert status["result"] == "failed"
    assert (
        status["summary"][0] == f"batch {state.batch_id} (fail_fast, 4 indexes): failed - 1 succeeded, 1 failed, "
        "1 pending, 1 skipped"
    )
    assert "  FAILED    a: migration stopped in phase create: boom" in status["summary"]
    assert "  skipped   z: no vec" in status["summary"]
    assert status["failures"] == [
        {
            "name": "a",
            "error": "migration stopped in phase create: boom",
            "kind": None,
            "hint": None,
            "phase": None,
            "index_dropped": False,
            "backup_path": None,
        }
    ]
    assert next_steps(state) == [
        "a stays failed; retry_failed=true resumes it from the start (nothing of it was changed)",
        "resume migrates c",
    ]
