"""Range validation of schema values (limits.py): patches and target schemas, before any plan."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import limits
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import SchemaInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import (
    parse_schema,
    parse_target_schema,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import merge, parse_patch

TARGET = {
    "index": {
        "name": "idx",
        "prefix": "p:",
        "language": "german",
        "score": 0.5,
        "filter": "@n>0",
        "stopwords": ["a", "the"],
    },
    "fields": [
        {"name": "title", "type": "text", "attrs": {"weight": 2, "phonetic_matcher": "dm:fr"}},
        {"name": "tags", "type": "tag", "attrs": {"separator": "|"}},
        {"name": "n", "type": "numeric"},
        {
            "name": "flat",
            "type": "vector",
            "attrs": {"algorithm": "flat", "dims": 8, "block_size": 1024, "initial_cap": 1000},
        },
        {
            "name": "hnsw",
            "type": "vector",
            "attrs": {
                "algorithm": "hnsw",
                "dims": 8,
                "m": 16,
                "ef_construction": 200,
                "ef_runtime": 10,
                "epsilon": 0.01,
            },
        },
    ],
}
SOURCE = parse_schema(TARGET)


def test_values_inside_every_range_parse():
    schema = parse_target_schema(TARGET)
    assert schema.field("hnsw").attrs.m == 16
    # The bounds themselves are accepted.
    edges = copy.deepcopy(TARGET)
    edges["fields"][4]["attrs"].update(m=4096, ef_construction=1_048_576, ef_runtime=1, epsilon=0)
    edges["fields"][0]["attrs"]["weight"] = 0
    edges["index"]["score"] = 1
    assert parse_target_schema(edges).field("hnsw").attrs.m == 4096


# (where in TARGET, attribute, bad value, substrings of the message: attribute, value, accepted range)
FIELD_CASES = [
    (4, "m", 10**9, ["m 1000000000", "2..4096"]),
    (4, "m", 1, ["m 1 ", "2..4096"]),
    (4, "m", 32768, ["m 32768", "2..4096", "crash"]),
    (4, "ef_construction", 0, ["ef_construction 0", "1..1048576"]),
    (4, "ef_runtime", 2**40, ["ef_runtime 1099511627776", "1..1048576"]),
    (4, "epsilon", float("nan"), ["epsilon nan", "not a finite number"]),
    (4, "epsilon", float("inf"), ["epsilon inf", "not a finite number"]),
    (4, "epsilon", -0.5, ["epsilon -0.5", "0..1000"]),
    (3, "block_size", 2**40, ["block_size 1099511627776", "1..1048576"]),
    (3, "block_size", 0, ["block_size 0", "1..1048576"]),
    (3, "dims", 10**6, ["dims 1000000", "1..32768"]),
    (3, "initial_cap", 2**30, ["initial_cap 1073741824", "0..4194304"]),
    (0, "weight", float("inf"), ["weight inf", "not a finite number"]),
    (0, "weight", "nan", ["weight 'nan'", "not a finite number"]),
    (0, "weight", -1, ["weight -1", "0..1e+06"]),
    (0, "phonetic_matcher", "dm:de", ["phonetic_matcher 'dm:de'", "dm:en, dm:fr, dm:pt, dm:es"]),
    (0, "phonetic_matcher", "soundex", ["phonetic_matcher 'soundex'", "dm:en"]),
    (1, "separator", "\x00", ["separator '\\x00'", "accepted: one of space, tab or"]),
    (1, "separator", "\n", ["separator '\\n'", "accepted"]),
    (1, "separator", "é", ["separator 'é'", "accepted"]),
    (1, "separator", "a", ["separator 'a'", "accepted"]),
]


@pytest.mark.parametrize("position, attr, value, expected", FIELD_CASES, ids=[f"{c[1]}={c[2]!r}" for c in FIELD_CASES])
def test_out_of_range_attributes_in_a_target_schema(position, attr, value, expected):
    data = copy.deepcopy(TARGET)
    data["fields"][position]["attrs"][attr] = value
    with pytest.raises(SchemaInvalid) as err:
        parse_target_schema(data, "target_schema")
    message = str(err.value)
    assert "\n" not in message
    assert f"fields[{position}] ({data['fields'][position]['name']})" in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize("position, attr, value, expected", FIELD_CASES, ids=[f"{c[1]}={c[2]!r}" for c in FIELD_CASES])
def test_out_of_range_attributes_in_a_patch_update(position, attr, value, expected):
    name = TARGET["fields"][position]["name"]
    with pytest.raises(SchemaInvalid) as err:
        parse_patch({"version": 1, "changes": {"update_fields": [{"name": name, "attrs": {attr: value}}]}})
    message = str(err.value)
    assert f"update_fields[0] ({name})" in message
    for part in expected:
        assert part in message, message


def test_the_same_value_from_a_source_schema_is_not_refused_when_read_back():
    """A schema read from a server or a plan file is parsed without limits: an index someone made
    with M 8000 can still be described, and only a plan that would create it again is refused."""
    data = copy.deepcopy(TARGET)
    data["fields"][4]["attrs"]["m"] = 8000
    source = parse_schema(data)
    assert source.field("hnsw").attrs.m == 8000
    with pytest.raises(SchemaInvalid, match="target schema: field 'hnsw': m 8000 is outside the accepted range"):
        merge(
            source,
            parse_patch({"version": 1, "changes": {"update_fields": [{"name": "title", "attrs": {"weight": 3}}]}}),
        )


INDEX_CASES = [
    ({"language": "klingon"}, ["language 'klingon'", "arabic", "yiddish"]),
    ({"language": ""}, ["language ''", "accepted"]),
    ({"score": float("nan")}, ["score nan", "not a finite number"]),
    ({"score": 1.5}, ["score 1.5", "0..1"]),
    ({"filter": ""}, ["filter is empty"]),
    ({"filter": "@n>0\x00garbage"}, ["filter", "control character '\\x00'"]),
    ({"prefix": "a\x00b:"}, ["prefix", "control character"]),
    ({"prefix": ["ok:", "x" * 2000]}, ["prefix is 2000 characters long", "at most 1024"]),
    ({"stopwords": ["fine", ""]}, ["stopword is empty"]),
    ({"stopwords": ["bad\nword"]}, ["stopword", "control character '\\n'"]),
    ({"name": ""}, ["index name is empty"]),
    ({"language_field": "lang\x00"}, ["language field", "control character"]),
]


@pytest.mark.parametrize("options, expected", INDEX_CASES, ids=[repr(c[0])[:40] for c in INDEX_CASES])
def test_out_of_range_index_options(options, expected):
    data = copy.deepcopy(TARGET)
    data["index"].update(options)
    with pytest.raises(SchemaInvalid) as err:
        parse_target_schema(data)
    for part in expected:
        assert part in str(err.value), str(err.value)
    with pytest.raises(SchemaInvalid) as err:
        parse_patch({"version": 1, "changes": {"index": options}})
    assert "changes.index" in str(err.value)
    for part in expected:
        assert part in str(err.value), str(err.value)


def test_language_and_matcher_are_case_insensitive_and_stored_as_the_server_wants():
    data = copy.deepcopy(TARGET)
    data["index"]["language"] = "German"
    data["fields"][0]["attrs"]["phonetic_matcher"] = "DM:EN"
    schema = parse_target_schema(data)
    assert schema.field("title").attrs.phonetic_matcher == "dm:en"


@pytest.mark.parametrize("name", ["", "a\x00b", "tab\there", "x" * 1025])
def test_field_names(name):
    data = copy.deepcopy(TARGET)
    data["fields"][2]["name"] = name
    with pytest.raises(SchemaInvalid, match="field name"):
        parse_target_schema(data)
    with pytest.raises(SchemaInvalid, match="field name"):
        parse_patch({"version": 1, "changes": {"add_fields": [{"name": name, "type": "numeric"}]}})


def test_vectors_allocated_at_once_are_bounded_in_bytes():
    data = copy.deepcopy(TARGET)
    # Each within its own range, but 1048576 float64 vectors of 4096 dims are 32 GiB in one block.
    data["fields"][3]["attrs"].update(dims=4096, datatype="float64", block_size=1_048_576)
    with pytest.raises(SchemaInvalid, match="block_size 1048576 x dims 4096 x 8 bytes"):
        parse_target_schema(data)
    data["fields"][3]["attrs"].update(block_size=1024, initial_cap=1_000_000)
    with pytest.raises(SchemaInvalid, match="initial_cap 1000000 x dims 4096"):
        parse_target_schema(data)
    # The same through a patch: dims come from the source, block_size from the patch.
    source = parse_schema(
        {
            "index": {"name": "i"},
            "fields": [
                {"name": "v", "type": "vector", "attrs": {"algorithm": "flat", "dims": 4096, "datatype": "float64"}}
            ],
        }
    )
    with pytest.raises(SchemaInvalid, match="block_size 1048576 x dims 4096"):
        merge(
            source,
            parse_patch(
                {"version": 1, "changes": {"update_fields": [{"name": "v", "attrs": {"block_size": 1_048_576}}]}}
            ),
        )


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"rename_fields": [{"old_name": "title", "new_name": ""}]}, "new_name is empty"),
        ({"rename_fields": [{"old_name": "", "new_name": "x"}]}, "old_name is empty"),
        ({"remove_fields": [""]}, "field name is empty"),
        ({"update_fields": [{"name": "", "attrs": {"weight": 2}}]}, "field name is empty"),
    ],
)
def test_empty_names_in_a_patch(changes, expected):
    with pytest.raises(SchemaInvalid, match=expected):
        parse_patch({"version": 1, "changes": changes})


def test_removing_every_field_is_one_clear_line():
    patch = parse_patch({"version": 1, "changes": {"remove_fields": [f["name"] for f in TARGET["fields"]]}})
    with pytest.raises(SchemaInvalid) as err:
        merge(SOURCE, patch)
    assert "removes every field of idx" in str(err.value) and "keep at least one field" in str(err.value)
    assert "\n" not in str(err.value)
    # Replacing every field is fine.
    target, _patch = merge(
        SOURCE,
        parse_patch(
            {
                "version": 1,
                "changes": {
                    "remove_fields": [f["name"] for f in TARGET["fields"]],
                    "add_fields": [{"name": "only", "type": "tag"}],
                },
            }
        ),
    )
    assert [f.name for f in target.fields] == ["only"]


def test_json_tags_without_separator_and_strings_that_look_like_numbers():
    schema = parse_target_schema(
        {
            "index": {"name": "j", "storage_type": "json"},
            "fields": [
                {"name": "t", "type": "tag", "attrs": {"separator": ""}},
                {"name": "v", "type": "vector", "attrs": {"algorithm": "hnsw", "dims": "8", "m": "16"}},
            ],
        }
    )
    assert schema.field("v").attrs.m == 16
    with pytest.raises(SchemaInvalid, match="m 99999 is outside"):
        parse_target_schema(
            {
                "index": {"name": "j"},
                "fields": [{"name": "v", "type": "vector", "attrs": {"algorithm": "hnsw", "dims": 8, "m": "99999"}}],
            }
        )


def test_option_errors_are_one_line_naming_the_option():
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
        MigrateOptions,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import ValidationError

    for options, expected in [
        ({"batch_size": 0}, "batch_size must be 1 or more, not 0"),
        ({"workers": -2}, "workers must be 1 or more, not -2"),
        ({"workers": 100000}, "workers must be 64 or less, not 100000"),
        ({"wait_timeout": -1}, "wait_timeout must be 0 or more, not -1"),
    ]:
        with pytest.raises(ValidationError) as err:
            MigrateOptions(**options)
        assert str(limits.explain_options(err.value)).startswith(expected)
