"""FT.CREATE argument order (the server's field parser stops at the first unexpected token)."""

from __future__ import annotations

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.ftcreate import (
    create_args,
    create_command,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema


def test_field_flags_in_parser_order():
    schema = parse_schema(
        {
            "index": {"name": "x", "prefix": ["a:", "b:"], "filter": "@n>0", "score": 0.5, "stopwords": []},
            "fields": [
                {
                    "name": "title",
                    "path": "t",
                    "type": "text",
                    "attrs": {
                        "weight": 2,
                        "no_stem": True,
                        "phonetic_matcher": "dm:en",
                        "withsuffixtrie": True,
                        "index_empty": True,
                        "index_missing": True,
                        "sortable": True,
                        "unf": True,
                    },
                },
                {
                    "name": "tg",
                    "type": "tag",
                    "attrs": {"separator": "|", "case_sensitive": True, "sortable": True, "no_index": True},
                },
                {
                    "name": "v",
                    "type": "vector",
                    "attrs": {
                        "algorithm": "hnsw",
                        "dims": 4,
                        "datatype": "float16",
                        "distance_metric": "ip",
                        "m": 8,
                        "epsilon": 0.02,
                    },
                },
            ],
        }
    )
    assert create_args(schema) == [
        "x",
        "ON",
        "HASH",
        "PREFIX",
        "2",
        "a:",
        "b:",
        "FILTER",
        "@n>0",
        "SCORE",
        "0.5",
        "STOPWORDS",
        "0",
        "SCHEMA",
        "t",
        "AS",
        "title",
        "TEXT",
        "NOSTEM",
        "WEIGHT",
        "2",
        "PHONETIC",
        "dm:en",
        "WITHSUFFIXTRIE",
        "INDEXEMPTY",
        "INDEXMISSING",
        "SORTABLE",
        "UNF",
        "tg",
        "TAG",
        "SEPARATOR",
        "|",
        "CASESENSITIVE",
        "SORTABLE",
        "NOINDEX",
        "v",
        "VECTOR",
        "HNSW",
        "10",
        "TYPE",
        "FLOAT16",
        "DIM",
        "4",
        "DISTANCE_METRIC",
        "IP",
        "M",
        "8",
        "EPSILON",
        "0.02",
    ]


def test_json_fields_always_use_path_as_name_and_rename_target():
    schema = parse_schema(
        {"index": {"name": "j", "storage_type": "json"}, "fields": [{"name": "title", "type": "text"}]}
    )
    assert create_args(schema, "j2")[:8] == ["j2", "ON", "JSON", "PREFIX", "1", "", "SCHEMA", "$.title"]
    assert 'PREFIX 1 ""' in create_command(schema)
