"""The typed changes between two schemas: which rewrite documents, and what is no change at all."""

from __future__ import annotations

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.changes import (
    FIELD_ADD,
    FIELD_ATTRIBUTE,
    FIELD_REMOVE,
    FIELD_RENAME,
    FIELD_TYPE,
    INDEX_OPTION,
    INDEX_RENAME,
    PREFIX_CHANGE,
    VECTOR_ALGORITHM,
    VECTOR_DATATYPE,
    diff,
    quantized_fields,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import merge, parse_patch


def schema(storage="hash", **index):
    return parse_schema(
        {
            "index": {"name": "idx", "prefix": "p:", "storage_type": storage, **index},
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "vec", "type": "vector", "attrs": {"algorithm": "flat", "dims": 4}},
            ],
        }
    )


def changes_of(changes, storage="hash"):
    source = schema(storage)
    target, patch = merge(source, parse_patch({"version": 1, "changes": changes}))
    return diff(source, target, patch.rename_fields)


def summary(found):
    return [(c.kind, c.field, c.attribute, c.before, c.after, c.rewrites_documents) for c in found]


@pytest.mark.parametrize("storage, rewrites", [("hash", True), ("json", False)])
def test_a_datatype_change_rewrites_hash_vectors_only(storage, rewrites):
    found = changes_of({"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]}, storage)
    assert summary(found) == [(VECTOR_DATATYPE, "vec", "datatype", "float32", "float16", rewrites)]
    assert quantized_fields(found) == (found if rewrites else [])


def test_identical_schemas_have_no_changes():
    assert diff(schema(), schema()) == []


def test_initial_cap_alone_is_no_change():
    """No server reports INITIAL_CAP, so it can never be compared with what a server holds."""
    assert changes_of({"update_fields": [{"name": "vec", "attrs": {"initial_cap": 1000}}]}) == []


def test_a_rename_is_one_change_not_a_removal_and_an_addition():
    found = changes_of({"rename_fields": [{"old_name": "title", "new_name": "headline"}]})
    assert summary(found) == [(FIELD_RENAME, "headline", None, "title", "headline", True)]


def test_index_level_changes():
    found = diff(schema(), schema(name="idx2", prefix="q:", language="german"))
    kinds = {c.kind: c for c in found}
    assert set(kinds) == {INDEX_RENAME, PREFIX_CHANGE, INDEX_OPTION}
    assert (kinds[INDEX_RENAME].before, kinds[INDEX_RENAME].after) == ("idx", "idx2")
    assert kinds[PREFIX_CHANGE].rewrites_documents and kinds[PREFIX_CHANGE].after == ["q:"]
    assert (kinds[INDEX_OPTION].attribute, kinds[INDEX_OPTION].after) == ("language", "german")


def test_fields_added_removed_retyped_and_retuned():
    found = changes_of(
        {
            "add_fields": [{"name": "price", "type": "numeric"}],
            "remove_fields": ["title"],
            "update_fields": [{"name": "vec", "attrs": {"algorithm": "hnsw", "m": 8}}],
        }
    )
    assert {(c.kind, c.field, c.attribute) for c in found} >= {
        (FIELD_ADD, "price", None),
        (FIELD_REMOVE, "title", None),
        (VECTOR_ALGORITHM, "vec", "algorithm"),
        (FIELD_ATTRIBUTE, "vec", "m"),
    }
    assert not any(c.rewrites_documents for c in found)


def test_a_type_change_is_reported_alone_without_its_attributes():
    source = schema()
    target = parse_schema(
        {
            "index": {"name": "idx", "prefix": "p:"},
            "fields": [
                {"name": "title", "type": "tag"},
                {"name": "vec", "type": "vector", "attrs": {"algorithm": "flat", "dims": 4}},
            ],
        }
    )
    assert summary(diff(source, target)) == [(FIELD_TYPE, "title", "type", "text", "tag", False)]
