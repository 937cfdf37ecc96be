"""One derivation of a request: the planner's, and the one that checks a plan when it is applied."""

from __future__ import annotations

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import PlanInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.classify import Classification
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.derive import (
    derive,
    derive_plan,
    verify_derivation,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.estimate import Estimate
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import (
    MigrationPlan,
    Renames,
    SourceState,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.capabilities import (
    ServerCapabilities,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.changes import (
    FIELD_RENAME,
    VECTOR_DATATYPE,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch

SOURCE = parse_schema(
    {
        "index": {"name": "idx", "prefix": "doc:"},
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "vec", "type": "vector", "attrs": {"algorithm": "flat", "dims": 4}},
        ],
    }
)
PATCH = parse_patch(
    {
        "version": 1,
        "changes": {
            "rename_fields": [{"old_name": "title", "new_name": "headline"}],
            "update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}],
        },
    }
)


def plan_of(requested, derived, **changes):
    plan = MigrationPlan(
        created_at="2026-01-01T00:00:00+00:00",
        source=SourceState(index="idx", requested_as="idx", endpoint="", index_schema=SOURCE.to_dict()),
        requested_changes=requested,
        target_schema=derived.target.to_dict(),
        changes=derived.changes,
        renames=Renames(fields=derived.renames),
        rewrites=derived.rewrites,
        classification=Classification(supported=True, nothing_to_do=False),
        estimate=Estimate(documents=0, documents_rewritten=0, batch_size=500),
        server=ServerCapabilities(search_version="2.10.5"),
    )
    for key, value in changes.items():
        setattr(plan, key, value)
    return plan.seal()


def test_a_patch_derives_target_changes_rewrites_and_renames():
    derived = derive(SOURCE, patch=PATCH)
    assert [f.name for f in derived.target.fields] == ["headline", "vec"]
    assert {c.kind for c in derived.changes} == {FIELD_RENAME, VECTOR_DATATYPE}
    assert [(m.old_location, m.new_location) for m in derived.rewrites.moves] == [("title", "headline")]
    assert [(q.field, q.source, q.target) for q in derived.rewrites.quantize] == [("vec", "float32", "float16")]
    assert [(r.old_name, r.new_name) for r in derived.renames] == [("title", "headline")]


def test_a_target_schema_derives_the_same_way_without_renames():
    target = derive(SOURCE, patch=PATCH).target
    derived = derive(SOURCE, target_schema=target)
    assert derived.target is target and derived.renames == []
    assert [c.kind for c in derived.changes if c.kind == VECTOR_DATATYPE] == [VECTOR_DATATYPE]


def test_a_plan_derives_again_from_its_own_request():
    derived = derive(SOURCE, patch=PATCH)
    plan = plan_of({"patch": PATCH.to_dict()}, derived)
    assert derive_plan(plan).target.to_dict() == derived.target.to_dict()
    verify_derivation(plan)  # a plan made by the planner's derivation passes


def test_a_plan_whose_target_does_not_follow_from_its_request_is_refused():
    derived = derive(SOURCE, patch=PATCH)
    edited = derived.target.to_dict()
    edited["fields"][1]["attrs"]["dims"] = 8
    plan = plan_of({"patch": PATCH.to_dict()}, derived, target_schema=edited)
    with pytest.raises(PlanInvalid, match="the plan's target schema do not follow from its source schema"):
        verify_derivation(plan)


def test_a_plan_without_a_request_is_refused():
    plan = plan_of({}, derive(SOURCE, patch=PATCH))
    with pytest.raises(PlanInvalid, match="records neither a patch nor a target schema"):
        derive_plan(plan)
