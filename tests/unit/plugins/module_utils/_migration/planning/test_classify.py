"""Classification and warnings for states that are hard to produce on a live server."""

from __future__ import annotations

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.classify import (
    LiveContext,
    classify,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.estimate import estimate
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan_warnings import (
    collect_warnings,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.capabilities import (
    ServerCapabilities,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.stats import IndexStats
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.changes import diff
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import merge, parse_patch
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.rewrites import document_rewrites
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.audit import AuditResult

CAPS = ServerCapabilities(search_version="2.10.5", vector_datatypes=["float32", "float16"], vector_algorithms=["flat"])
SOURCE = parse_schema(
    {"index": {"name": "idx"}, "fields": [{"name": "v", "type": "vector", "attrs": {"algorithm": "flat", "dims": 4}}]}
)


def run(changes, stats=None, unrecognized=(), caps=CAPS):
    target, patch = merge(SOURCE, parse_patch({"version": 1, "changes": changes}))
    found = diff(SOURCE, target, patch.rename_fields)
    rewrites = document_rewrites(SOURCE, target, found, patch.rename_fields)
    classification = classify(SOURCE, target, found, rewrites, LiveContext(capabilities=caps), list(unrecognized))
    stats = stats or IndexStats(num_docs=10)
    cost = estimate(SOURCE, target, stats, rewrites, AuditResult(), False, 500)
    warnings = collect_warnings(
        SOURCE, target, stats, found, rewrites, classification, AuditResult(), cost, caps, [], [], False, []
    )
    return classification, warnings


def test_unrecognized_server_settings_block_recreation():
    classification, dummy = run(
        {"update_fields": [{"name": "v", "attrs": {"datatype": "float16"}}]}, unrecognized=["field v: FUTUREFLAG"]
    )
    assert not classification.supported
    assert "does not understand (field v: FUTUREFLAG)" in classification.blocked_reasons[0]


def test_still_building_warns():
    dummy, warnings = run(
        {"update_fields": [{"name": "v", "attrs": {"datatype": "float16"}}]},
        stats=IndexStats(num_docs=10, indexing=True, percent_indexed=0.4),
    )
    assert any("still indexing (40%)" in w for w in warnings)


def test_unchanged_vector_of_an_unaccepted_datatype_is_reported():
    caps = CAPS.model_copy(update={"vector_datatypes": ["float16"]})
    classification, dummy = run({"add_fields": [{"name": "t", "type": "text"}]}, caps=caps)
    assert "does not accept FLOAT32 vectors" in classification.blocked_reasons[0]


def test_blocked_changes_carry_no_warnings_of_their_own():
    classification, warnings = run({"update_fields": [{"name": "v", "attrs": {"datatype": "bfloat16"}}]})
    assert not classification.supported
    assert not any("Lossy" in w for w in warnings)


def test_warnings_a_live_test_cannot_reach():
    """uint8 (the test server rejects it), a FILTER change, parameters hidden from us, keys vanishing."""
    caps = CAPS.model_copy(update={"vector_datatypes": ["float32", "uint8"]})
    source = parse_schema(
        {
            "index": {"name": "idx"},
            "fields": [
                {"name": "v", "type": "vector", "attrs": {"algorithm": "hnsw", "dims": 4, "distance_metric": "ip"}}
            ],
        }
    )
    target, patch = merge(
        source,
        parse_patch(
            {
                "version": 1,
                "changes": {
                    "update_fields": [{"name": "v", "attrs": {"datatype": "uint8"}}],
                    "index": {"filter": "@x>1"},
                },
            }
        ),
    )
    found = diff(source, target, patch.rename_fields)
    rewrites = document_rewrites(source, target, found, patch.rename_fields)
    classification = classify(source, target, found, rewrites, LiveContext(capabilities=caps))
    stats = IndexStats(num_docs=10)
    audit = AuditResult(documents=10, missing_keys=2)
    cost = estimate(source, target, stats, rewrites, audit, False, 500)
    warnings = collect_warnings(
        source,
        target,
        stats,
        found,
        rewrites,
        classification,
        audit,
        cost,
        caps,
        [],
        [],
        False,
        ["fields.v.ef_runtime", "fields.v.epsilon"],
    )
    assert classification.supported
    assert any(w.startswith("uint8 with the ip metric needs non-negative values") for w in warnings)
    assert any(w.startswith("The index has a FILTER") for w in warnings)
    assert any("did not report fields.v.ef_runtime, fields.v.epsilon" in w for w in warnings)
    assert any(w.startswith("2 sampled keys vanished while planning") for w in warnings)


def test_maxtextfields_with_nofields_is_not_introduced():
    classification, dummy = run({"index": {"max_text_fields": True, "no_fields": True}})
    assert "MAXTEXTFIELDS together with NOFIELDS crashed redis-server" in classification.blocked_reasons[0]


def test_initial_cap_alone_is_not_a_change():
    classification, dummy = run({"update_fields": [{"name": "v", "attrs": {"initial_cap": 5000}}]})
    assert classification.nothing_to_do
