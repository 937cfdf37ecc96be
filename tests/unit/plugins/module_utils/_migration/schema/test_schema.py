"""Strict schema parsing, normalization and comparison (pure logic)."""

from __future__ import annotations

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import SchemaInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import (
    differences,
    parse_schema,
)

REFERENCE = {  # the reference walkthrough's schema, verbatim in shape
    "index": {"name": "products", "prefix": "product", "storage_type": "hash"},
    "fields": [
        {"name": "name", "type": "text"},
        {"name": "category", "type": "tag"},
        {
            "name": "embedding",
            "type": "vector",
            "attrs": {"algorithm": "flat", "dims": 8, "distance_metric": "cosine", "datatype": "float32"},
        },
    ],
}


def test_reference_shape_loads():
    schema = parse_schema(REFERENCE)
    assert schema.index.prefix == ["product"]
    assert schema.field("embedding").attrs.dims == 8
    assert schema.to_dict()["index"]["prefix"] == "product"


def test_values_are_case_insensitive():
    vector = {"algorithm": "HNSW", "dims": 4, "datatype": "FLOAT16", "distance_metric": "L2"}
    data = {**REFERENCE, "fields": [{"name": "v", "type": "VECTOR", "attrs": vector}]}
    attrs = parse_schema(data).field("v").attrs
    assert (attrs.algorithm, attrs.datatype, attrs.distance_metric) == ("hnsw", "float16", "l2")


@pytest.mark.parametrize(
    "mutate, message, hint",
    [
        (lambda d: d["index"].update(prefx="p"), "unknown index option 'prefx'", "did you mean 'prefix'"),
        (lambda d: d.update(feilds=[]), "unknown section 'feilds'", "did you mean 'fields'"),
        (
            lambda d: d["fields"][2]["attrs"].update(dimz=3),
            "unknown vector field attribute 'dimz'",
            "did you mean 'dims'",
        ),
        (
            lambda d: d["fields"][1].update(attrs={"seperator": "|"}),
            "unknown tag field attribute 'seperator'",
            "did you mean 'separator'",
        ),
        (lambda d: d["fields"][0].update(type="txt"), "unknown field type 'txt'", "text, tag, numeric"),
    ],
)
def test_misspelt_keys_name_the_key_and_the_choices(mutate, message, hint):
    import copy

    data = copy.deepcopy(REFERENCE)
    mutate(data)
    with pytest.raises(SchemaInvalid) as err:
        parse_schema(data, "target schema")
    assert message in str(err.value)
    assert hint in str(err.value)


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"algorithm": "flat", "dims": 8, "datatype": "float17"}, "datatype must be one of float32, float64, float16"),
        ({"algorithm": "annoy", "dims": 8}, "algorithm must be one of flat, hnsw, svs-vamana"),
        ({"algorithm": "flat", "dims": 0}, "greater than 0"),
        ({"algorithm": "flat", "dims": 8, "m": 16}, "m applies to the hnsw algorithm only"),
        ({"algorithm": "flat", "dims": 8, "distance_metric": "dot"}, "distance_metric must be one of cosine, l2, ip"),
    ],
)
def test_invalid_vector_values(attrs, message):
    data = {"index": {"name": "x"}, "fields": [{"name": "v", "type": "vector", "attrs": attrs}]}
    with pytest.raises(SchemaInvalid) as err:
        parse_schema(data)
    assert message in str(err.value)
    assert "fields[0] (v)" in str(err.value)


def test_duplicate_field_and_conflicting_flags():
    with pytest.raises(SchemaInvalid, match="defined twice"):
        parse_schema({"index": {"name": "x"}, "fields": [{"name": "a", "type": "tag"}, {"name": "a", "type": "text"}]})
    with pytest.raises(SchemaInvalid, match="index_missing and no_index"):
        parse_schema(
            {
                "index": {"name": "x"},
                "fields": [{"name": "a", "type": "tag", "attrs": {"index_missing": True, "no_index": True}}],
            }
        )


def test_normalization_makes_server_implications_explicit():
    schema = parse_schema(
        {
            "index": {"name": "x", "no_offsets": True, "stopwords": ["b", "a", "a"]},
            "fields": [
                {"name": "n", "type": "numeric", "attrs": {"sortable": True}},
                {"name": "t", "type": "tag"},
                {"name": "h", "type": "vector", "attrs": {"algorithm": "hnsw", "dims": 3}},
            ],
        }
    ).normalized()
    assert schema.index.no_highlight is True  # NOOFFSETS implies NOHL
    assert schema.index.language == "english" and schema.index.score == 1.0
    assert schema.index.stopwords == ["a", "b"]
    assert schema.field("n").attrs.unf is True  # NUMERIC SORTABLE is always UNF
    assert schema.field("t").attrs.separator == ","
    hnsw = schema.field("h").attrs
    assert (hnsw.m, hnsw.ef_construction, hnsw.ef_runtime, hnsw.epsilon) == (16, 200, 10, 0.01)


def test_json_defaults_differ_from_hash():
    schema = parse_schema(
        {
            "index": {"name": "x", "storage_type": "json"},
            "fields": [{"name": "t", "type": "text", "attrs": {"sortable": True}}, {"name": "g", "type": "tag"}],
        }
    ).normalized()
    assert schema.field("t").path == "$.t"
    assert schema.field("t").attrs.unf is True  # every JSON SORTABLE is UNF
    assert schema.field("g").attrs.separator == ""


def test_differences_ignore_defaults_and_unobservable():
    base = parse_schema(REFERENCE)
    explicit = parse_schema(
        {
            **REFERENCE,
            "fields": REFERENCE["fields"][:2]
            + [
                {
                    "name": "embedding",
                    "type": "vector",
                    "attrs": {
                        "algorithm": "flat",
                        "dims": 8,
                        "distance_metric": "cosine",
                        "datatype": "float32",
                        "block_size": 1024,
                        "initial_cap": 500,
                    },
                }
            ],
        }
    )
    assert differences(base, explicit) == []
    changed = parse_schema(
        {
            **REFERENCE,
            "fields": REFERENCE["fields"][:2]
            + [
                {
                    "name": "embedding",
                    "type": "vector",
                    "attrs": {"algorithm": "flat", "dims": 8, "datatype": "float16"},
                }
            ],
        }
    )
    assert differences(base, changed) == ["field 'embedding' datatype: expected 'float32', found 'float16'"]
    fewer = parse_schema({**REFERENCE, "fields": REFERENCE["fields"][:1]})
    assert differences(base, fewer) == ["field 'category': missing", "field 'embedding': missing"]
