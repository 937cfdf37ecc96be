"""The cost estimate: the backup's size byte for byte as the format writes it, memory, AOF growth."""

from __future__ import annotations

import math

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import (
    BLOCK_HEADER_SIZE,
    FILE_MAGIC,
    encode_block,
    encode_record,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.estimate import (
    AOF_COMMAND_OVERHEAD,
    AOF_TRANSACTION_OVERHEAD,
    estimate,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.stats import IndexStats
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.changes import diff
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import merge, parse_patch
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.rewrites import document_rewrites
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.audit import AuditResult

SOURCE = parse_schema(
    {
        "index": {"name": "idx", "prefix": "doc:"},
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "vec", "type": "vector", "attrs": {"algorithm": "flat", "dims": 4}},
        ],
    }
)
KEYS = [f"doc:{i}".encode() for i in range(5)]  # 5 documents, batches of 2: 3 blocks


def planned(changes):
    target, patch = merge(SOURCE, parse_patch({"version": 1, "changes": changes}))
    found = diff(SOURCE, target, patch.rename_fields)
    return target, document_rewrites(SOURCE, target, found, patch.rename_fields)


def blocks_of(records, batch):
    return FILE_MAGIC + b"".join(
        encode_block(n, records[i : i + batch]) for n, i in enumerate(range(0, len(records), batch))
    )


def test_a_complete_audit_gives_the_backup_and_staged_files_byte_for_byte():
    target, rewrites = planned({"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]})
    audit = AuditResult(mode="all", documents=len(KEYS), key_bytes=sum(map(len, KEYS)))
    cost = estimate(SOURCE, target, IndexStats(num_docs=len(KEYS)), rewrites, audit, False, 2)
    data = blocks_of([encode_record(k, [(b"vec", b"\0" * 16)]) for k in KEYS], 2)  # float32 originals
    staged = blocks_of([encode_record(k, [(b"vec", b"\0" * 8)]) for k in KEYS], 2)  # float16 conversions
    assert (cost.backup_bytes, cost.backup_bytes_exact, cost.staged_bytes) == (len(data), True, len(staged))
    assert cost.backup_breakdown["block_headers"] == 3 * BLOCK_HEADER_SIZE
    assert cost.documents_rewritten == len(KEYS)


def test_a_sample_extrapolates_its_key_lengths_and_says_so():
    target, rewrites = planned({"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]})
    audit = AuditResult(mode="sample", documents=2, key_bytes=2 * 10)  # keys of 10 bytes on average
    cost = estimate(SOURCE, target, IndexStats(num_docs=1000), rewrites, audit, False, 500)
    assert not cost.backup_bytes_exact
    assert cost.backup_breakdown["keys"] == 1000 * 10
    assert cost.backup_breakdown["block_headers"] == math.ceil(1000 / 500) * BLOCK_HEADER_SIZE


def test_quantizing_hash_vectors_halves_their_bytes_in_memory_and_on_disk():
    target, rewrites = planned({"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]})
    cost = estimate(SOURCE, target, IndexStats(num_docs=100), rewrites, AuditResult(mode="skipped"), False, 500)
    assert cost.memory_before_bytes["vectors_in_documents"] == 100 * 4 * 4
    assert cost.memory_after_bytes["vectors_in_documents"] == 100 * 4 * 2
    assert cost.rdb_delta_bytes == -100 * 4 * 2
    assert [(v.field, v.source_bytes_per_doc, v.target_bytes_per_doc) for v in cost.vector_fields] == [("vec", 16, 8)]


def test_aof_growth_counts_what_each_rewritten_document_appends():
    target, rewrites = planned({"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]})
    audit = AuditResult(mode="all", documents=4, key_bytes=4 * 6)
    off = estimate(SOURCE, target, IndexStats(num_docs=4), rewrites, audit, False, 500)
    on = estimate(SOURCE, target, IndexStats(num_docs=4), rewrites, audit, True, 500)
    per_doc = AOF_TRANSACTION_OVERHEAD + 6 + AOF_COMMAND_OVERHEAD + len("vec") + 4 * 2
    assert (off.aof_growth_bytes, on.aof_growth_bytes) == (0, 4 * per_doc)


def test_an_index_only_change_backs_up_nothing():
    target, rewrites = planned({"add_fields": [{"name": "price", "type": "numeric"}]})
    audit = AuditResult(mode="all", documents=5, key_bytes=25)
    cost = estimate(SOURCE, target, IndexStats(num_docs=5), rewrites, audit, True, 500)
    assert (cost.documents_rewritten, cost.backup_bytes, cost.staged_bytes, cost.aof_growth_bytes) == (0, 0, 0, 0)
    assert cost.backup_bytes_exact


def test_the_backup_directory_is_measured_when_given(tmp_path):
    target, rewrites = planned({"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]})
    audit = AuditResult(mode="all", documents=5, key_bytes=25)
    cost = estimate(SOURCE, target, IndexStats(num_docs=5), rewrites, audit, False, 500, str(tmp_path / "new"))
    assert cost.backup_dir_free_bytes > 0 and cost.backup_fits
    assert cost.backup_dir_required_bytes == int((cost.backup_bytes + cost.staged_bytes) * 1.05)
