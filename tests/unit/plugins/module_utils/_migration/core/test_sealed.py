"""Sealed files: the checksum anyone can recompute, and the refusals of a file that is not what was written."""

from __future__ import annotations

import json
import os
from typing import ClassVar

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    BackupInvalid,
    PlanInvalid,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.files import write_atomic
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.sealed import (
    RecordKind,
    SealedDocument,
    SealedFormat,
    SealedRecord,
    checksum_of,
)

FORMAT = SealedFormat(
    "indexops.redis_search/thing",
    2,
    "thing",
    create="make one",
    newer="make it again",
    malformed="remake it",
    edited="do not edit it",
)


class Thing(SealedDocument):
    HEADER: ClassVar[str] = "# a thing\n"
    format: str = FORMAT.name
    format_version: int = FORMAT.version
    size: int


class Diary(SealedRecord):
    KIND: ClassVar[RecordKind] = RecordKind(
        "indexops.redis_search/diary", 1, "diary", "diary file", BackupInvalid, "restore it"
    )
    format: str = "indexops.redis_search/diary"
    format_version: int = 1
    checksum: str = ""
    updated_at: str = ""
    lines: int = 0


def test_the_checksum_is_over_canonical_json_without_itself():
    assert checksum_of({"b": 1, "a": [1, "é"]}) == checksum_of({"a": [1, "é"], "checksum": "x", "b": 1})
    assert checksum_of({"a": 1}) != checksum_of({"a": 2})
    assert checksum_of({"a": 1}).startswith("sha256:") and len(checksum_of({"a": 1})) == 7 + 64


def test_a_sealed_document_loads_back_and_opens_its_yaml_with_its_header():
    thing = Thing(created_at="2026-01-01T00:00:00+00:00", size=3).seal()
    assert list(thing.to_dict())[:5] == ["format", "format_version", "checksum", "created_at", "collection_version"]
    assert FORMAT.load(thing.to_dict(), Thing, "thing t.yaml").size == 3
    assert thing.to_yaml().startswith("# a thing\nformat: indexops.redis_search/thing\n")
    assert thing.short_id == thing.checksum[7:19]


@pytest.mark.parametrize(
    "change, message, hint",
    [
        (
            {"format": "other"},
            "thing t.yaml is not an indexops.redis_search thing (format: indexops.redis_search/thing missing)",
            "make one",
        ),
        ({"format_version": 1}, "thing t.yaml has format_version 1; this collection reads 2", "make it again"),
        ({"size": "many"}, "thing t.yaml is malformed at size: ", "remake it"),
        ({"size": 4}, "thing t.yaml was changed after it was written (checksum mismatch)", "do not edit it"),
    ],
)
def test_each_refusal_says_what_is_wrong_and_the_way_out(change, message, hint):
    data = {**Thing(created_at="now", size=3).seal().to_dict(), **change}
    with pytest.raises(PlanInvalid) as refused:
        FORMAT.load(data, Thing, "thing t.yaml")
    assert refused.value.message.startswith(message) and refused.value.hint == hint


def test_a_record_saved_atomically_reads_back_verified(tmp_path):
    path = str(tmp_path / "diary.json")
    write_atomic(path, Diary(lines=2).sealed_json())
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    diary = Diary.read_from(path).verified(path)
    assert diary.lines == 2 and diary.updated_at and diary.intact()


def test_an_edited_or_foreign_record_is_refused_with_its_own_words(tmp_path):
    path = str(tmp_path / "diary.json")
    write_atomic(path, Diary(lines=2).sealed_json())
    data = json.loads(open(path, encoding="utf-8").read())
    data["lines"] = 3
    write_atomic(path, json.dumps(data).encode())
    with pytest.raises(BackupInvalid, match=r"diary file .* was changed outside this collection") as refused:
        Diary.read_from(path).verified(path)
    assert refused.value.hint == "restore it"
    data["format_version"] = 9
    write_atomic(path, json.dumps(data).encode())
    with pytest.raises(BackupInvalid, match="is not an indexops diary of version 1"):
        Diary.read_from(path).verified(path)
