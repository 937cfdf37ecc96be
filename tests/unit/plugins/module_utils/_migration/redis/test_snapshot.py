"""A live index compared with a schema: as far as the server shows it, and no further."""

from __future__ import annotations

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import SchemaSnapshot
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema


def schema(separator=":", block_size=None, dims=4):
    attrs = {"algorithm": "flat", "dims": dims, **({"block_size": block_size} if block_size else {})}
    return parse_schema(
        {
            "index": {"name": "idx", "key_separator": separator},
            "fields": [{"name": "vec", "type": "vector", "attrs": attrs}],
        }
    )


# This server did not show BLOCK_SIZE (FT.DEBUG not allowed).
LIVE = SchemaSnapshot(index_schema=schema(), unobserved=["fields.vec.block_size"])


def test_what_no_server_reports_and_what_this_one_did_not_show_are_left_out():
    assert LIVE.matches(schema(separator="|", block_size=2048))
    assert LIVE.differs_from(schema(separator="|")) == []


def test_every_other_difference_is_named():
    assert LIVE.differs_from(schema(dims=8)) == ["field 'vec' dims: expected 8, found 4"]
    assert not LIVE.matches(schema(dims=8))


def test_without_unobserved_settings_they_count():
    shown = SchemaSnapshot(index_schema=schema())
    assert shown.differs_from(schema(block_size=2048)) == ["field 'vec' block_size: expected 2048, found 1024"]
