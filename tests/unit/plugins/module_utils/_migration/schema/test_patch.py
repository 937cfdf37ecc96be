"""Patch merging: what moves, what is renamed only, what is refused."""

from __future__ import annotations

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import SchemaInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.changes import diff
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import merge, parse_patch


def schema(storage="hash"):
    return parse_schema(
        {
            "index": {"name": "idx", "prefix": "p:", "storage_type": storage},
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "body", "path": "b" if storage == "hash" else "$.meta.body", "type": "text"},
                {"name": "vec", "type": "vector", "attrs": {"algorithm": "hnsw", "dims": 4, "m": 8}},
            ],
        }
    )


def patched(changes, storage="hash"):
    return merge(schema(storage), parse_patch({"version": 1, "changes": changes}))


@pytest.mark.parametrize(
    "storage, field, moves, old, new",
    [
        ("hash", "title", True, "title", "headline"),  # the hash field follows the name
        ("hash", "body", False, "b", "b"),  # `b AS body`: only the attribute is renamed
        ("json", "title", True, "$.title", "$.headline"),  # default JSONPath follows the name
        ("json", "body", False, "$.meta.body", "$.meta.body"),  # a custom JSONPath stays
    ],
)
def test_rename_moves_data_only_when_the_location_follows_the_name(storage, field, moves, old, new):
    target, patch = patched({"rename_fields": [{"old_name": field, "new_name": "headline"}]}, storage)
    rename = patch.rename_fields[0]
    assert (rename.moves_data, rename.old_location, rename.new_location) == (moves, old, new)
    assert target.identifier(target.field("headline")) == new
    changes = diff(schema(storage), target, patch.rename_fields)
    assert [(c.kind, c.rewrites_documents) for c in changes] == [("field_rename", moves)]


def test_update_may_name_a_field_by_its_new_name_and_options_merge_into_attrs():
    target, dummy = patched(
        {
            "rename_fields": [{"old_name": "title", "new_name": "headline"}],
            "update_fields": [{"name": "headline", "attrs": {"weight": 2}, "options": {"sortable": True}}],
        }
    )
    assert target.field("headline").attrs.weight == 2 and target.field("headline").attrs.sortable


def test_algorithm_change_drops_the_old_algorithms_parameters():
    target, dummy = patched({"update_fields": [{"name": "vec", "attrs": {"algorithm": "flat"}}]})
    attrs = target.field("vec").attrs
    assert attrs.algorithm == "flat" and attrs.m is None and attrs.dims == 4


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"remove_fields": ["nope"]}, "the index has no field 'nope'"),
        ({"add_fields": [{"name": "title", "type": "tag"}]}, "field 'title' already exists"),
        ({"rename_fields": [{"old_name": "title", "new_name": "title"}]}, "renamed to itself"),
        (
            {"remove_fields": ["title"], "update_fields": [{"name": "title", "attrs": {"weight": 2}}]},
            "also in remove_fields",
        ),
        (
            {"update_fields": [{"name": "title", "attrs": {"separator": ";"}}]},
            "unknown text field attribute 'separator'",
        ),
        ({"update_fields": [{"name": "vec", "attrs": {"m": 8, "block_size": 4}}]}, "block_size applies to the flat"),
    ],
)
def test_merge_errors(changes, message):
    with pytest.raises(SchemaInvalid, match=message):
        patched(changes)


def test_reference_wizard_output_is_accepted():
    """The reference wizard writes every section, empty ones included, and `options: {}`."""
    patch = parse_patch(
        {
            "version": 1,
            "changes": {
                "add_fields": [],
                "remove_fields": [],
                "rename_fields": [],
                "index": {},
                "update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}, "options": {}}],
            },
        }
    )
    target, dummy = merge(schema(), patch)
    assert target.field("vec").attrs.datatype == "float16"
