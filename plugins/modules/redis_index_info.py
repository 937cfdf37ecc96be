#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: read-only facts about a Redis server's search indexes."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_index_info
short_description: List Redis search indexes, or show one index's full schema and stats
version_added: 0.1.0
description:
  - Lists the search indexes of a Redis server with their aliases, storage, prefixes and document counts.
  - With O(index), returns that index's schema captured losslessly (every index option and every field
    attribute, including vector parameters that C(FT.INFO) does not show), its statistics, and the
    C(FT.CREATE) command that recreates it.
  - Always returns the server's capabilities - Redis and module versions, and which vector datatypes and
    algorithms the server accepts (probed without creating anything) - and its place in a replica set - its role,
    its replicas and how far behind each is, and with O(sentinel) what the Sentinels report.
  - Read-only. Never changes the server.
extends_documentation_fragment:
  - indexops.redis_search.connection
attributes:
  check_mode:
    description: Runs the same read-only commands in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
options:
  index:
    description:
      - Name (or alias) of one index to describe in full.
      - When the index does not exist the module succeeds with RV(exists=false).
    type: str
  aliases:
    description:
      - Alias names to resolve.
      - Servers before search 8.10 have no command that lists aliases, so the module cannot find them by
        itself there; the aliases given here are resolved and reported with the index they point at.
    type: list
    elements: str
    default: []
  backup_dir:
    description:
      - A backup directory of C(redis_index_migrate). When given, RV(migrations) reports every migration backed up
        there (limited to O(index) when set) with its status, phase and progress - the way to follow a migration
        that runs with C(async), from another task or job.
      - A path that exists but is not a directory is refused.
    type: path
  probe_capabilities:
    description:
      - Probe which vector datatypes and algorithms the server accepts, with C(FT.CREATE) commands built
        to fail (nothing is created). When V(false), or when the probe is not permitted, the search
        module's version decides.
    type: bool
    default: true
seealso:
  - module: indexops.redis_search.redis_index_plan
  - module: indexops.redis_search.redis_index_migrate
    description: Runs the migrations this module lists under RV(migrations).
  - module: indexops.redis_search.redis_index_rollback
    description: Rolls back a migration listed here, from its backup.
"""

EXAMPLES = r"""
- name: List every search index on the server
  indexops.redis_search.redis_index_info:
    redis_url: redis://localhost:6379/0
  register: search

- name: Show the products index with the aliases the application uses
  indexops.redis_search.redis_index_info:
    host: redis.internal
    password: "{{ vault_redis_password }}"
    index: products
    aliases: [products_current]
  register: products

- name: Fail early when the server cannot store float16 vectors
  ansible.builtin.assert:
    that: "'float16' in products.server.vector_datatypes"
    fail_msg: "{{ products.server.redis_version }} with search {{ products.server.search_version }} lacks float16"

- name: Print the embedding field's datatype
  ansible.builtin.debug:
    msg: "{{ (products.index.schema.fields | selectattr('name', 'equalto', 'embedding') | first).attrs.datatype }}"
"""

RETURN = r"""
indexes:
  description: Every index on the server, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Index name.
      type: str
    aliases:
      description: Aliases of the index (see RV(indexes[].aliases_complete)).
      type: list
      elements: str
    aliases_complete:
      description: V(true) when the server listed the aliases itself (FT.ALIASLIST); V(false) when only
        the O(aliases) given were checked.
      type: bool
    storage_type:
      description: V(hash) or V(json).
      type: str
    prefixes:
      description: Key prefixes the index covers.
      type: list
      elements: str
    num_docs:
      description: Documents in the index.
      type: int
    hash_indexing_failures:
      description: Documents the index failed to index, over its whole life (this counter never decreases).
      type: int
    indexing:
      description: Whether the index is still building.
      type: bool
    percent_indexed:
      description: Fraction of the key space scanned, V(1.0) when done.
      type: float
    field_count:
      description: Number of fields.
      type: int
    vector_fields:
      description: Vector fields with their algorithm, datatype, dims and distance metric.
      type: list
      elements: dict
  sample:
    - name: products
      aliases: []
      aliases_complete: false
      storage_type: hash
      prefixes: [product]
      num_docs: 600
      hash_indexing_failures: 0
      indexing: false
      percent_indexed: 1.0
      field_count: 3
      vector_fields: [{name: embedding, algorithm: flat, datatype: float32, dims: 8, distance_metric: cosine}]
exists:
  description: Whether O(index) exists (as an index or an alias).
  returned: when O(index) is given
  type: bool
index:
  description: The index named by O(index), in full. V(null) when it does not exist.
  returned: when O(index) is given
  type: dict
  contains:
    name:
      description: The index's real name (O(index) may have been an alias).
      type: str
    requested_as:
      description: The name O(index) gave.
      type: str
    aliases:
      description: Aliases of the index.
      type: list
      elements: str
    aliases_complete:
      description: See RV(indexes[].aliases_complete).
      type: bool
    schema:
      description:
        - The schema in the C(index)/C(fields) shape used for target schemas and plans. Every index option
          (prefix, storage_type, filter, language, language_field, score, score_field, payload_field,
          max_text_fields, no_offsets, no_highlight, no_fields, no_freqs, stopwords) and every field
          attribute is explicit.
      type: dict
    ft_create:
      description: The C(FT.CREATE) command that recreates this index exactly.
      type: str
    unobserved:
      description: Settings no server command reports (for example C(fields.embedding.initial_cap)); a
        migration carries them only when the target schema sets them.
      type: list
      elements: str
    unrecognized:
      description: Settings the server reports that this collection does not understand; migrations of
        such an index are refused rather than dropping them.
      type: list
      elements: str
    stats:
      description: num_docs, max_doc_id, num_terms, num_records, hash_indexing_failures, indexing,
        percent_indexed, total_indexing_time_ms, memory_mb (every size FT.INFO reports), vector_index_bytes,
        index_bytes, last_indexing_error and last_indexing_error_key.
      type: dict
migrations:
  description: Migrations found in O(backup_dir), oldest first. A backup whose header cannot be read is listed with
    RV(migrations[].status=unreadable) and its RV(migrations[].error).
  returned: when O(backup_dir) is given
  type: list
  elements: dict
  contains:
    path:
      description: The migration's backup directory.
      type: str
    source_index:
      description: Index migrated.
      type: str
    target_index:
      description: Index it becomes.
      type: str
    requested_as:
      description:
        - The name the migration's task gave - the index or an alias of it. Successive online migrations of one
          index share it while their source indexes differ (V(products), then V(products--v3)). With O(index), a
          migration is listed when this name, its source or its target is O(index).
      type: str
    status:
      description:
        - V(running), V(failed), V(side_by_side), V(completed), V(rolling_back), V(rolled_back), V(interrupted) or
          V(unreadable).
        - V(running) and V(rolling_back) mean a process works on it now - it holds the index's lock (see
          RV(migrations[].lock)).
        - V(interrupted) - the header says V(running) or V(rolling_back) but no process works on it any more -
          nobody holds the index's lock, or its holder is a process of this host that is gone (a cancelled or
          killed job). A lock held from another host counts as live until its TTL (60 s, refreshed every 15 s)
          runs out. RV(migrations[].hint) says the way out - run the same migrate task again to resume, or
          roll back.
        - V(side_by_side) - an online migration with O(indexops.redis_search.redis_index_plan#module:cutover=side_by_side)
          stopped with its new index serving beside the source; run it again with C(finish=true) to swap and contract.
      type: str
    recorded_status:
      description: For an V(interrupted) one, the status its header records (V(running) or V(rolling_back)).
      returned: when status is interrupted
      type: str
    hint:
      description: For an V(interrupted) one, what to do - resume with the same migrate task, or roll back.
      returned: when status is interrupted
      type: str
    lock:
      description:
        - The index's lock while the migration or rollback runs - C(purpose), C(host), C(pid), C(since),
          C(ttl_ms) (how long it lasts without a refresh) and C(owner_gone).
      returned: when status is running or rolling_back, or interrupted with a lock left behind
      type: dict
    phase:
      description: The phase running, or the one it stopped in.
      type: str
    step:
      description: >-
        The step of an online migration the phase belongs to - V(expand) (the new bytes written beside the old
        ones), V(build) (an index built beside the serving one and validated), V(side_by_side), V(catch_up) (documents
        the application changed or added since the backup, re-expanded from their current bytes), V(swap) or
        V(contract) (the old bytes removed; for a datatype change in place also the converted bytes written to the
        original location) - or the status once it is over (V(completed), V(rolled_back), ...). For the backup and
        a drop_recreate migration, the phase.
      type: str
    phases_done:
      description: Phases completed, in order.
      type: list
      elements: str
    progress:
      description: Counters of each phase so far (documents backed up, blocks done of blocks, documents indexed, ...).
      type: dict
    error:
      description: Where and why it failed, when it did.
      type: dict
  sample:
    - path: /var/lib/indexops/backups/products-0a3e27b8c1d2
      source_index: products
      target_index: products
      requested_as: products
      status: running
      phase: quantize
      step: quantize
      phases_done: [backup, drop, move_fields, rename_keys]
      progress: {backup: {documents: 1000000, blocks: 2000}, quantize: {blocks_done: 812, blocks: 2000}}
replication:
  description: The server's role and replicas, from C(INFO replication).
  returned: always
  type: dict
  contains:
    role:
      description: V(primary) or V(replica).
      type: str
    replication_offset:
      description: The server's replication offset (a replica's, the offset it has applied).
      type: int
    connected_replicas:
      description: Replicas connected to this primary.
      type: int
      returned: when RV(replication.role=primary)
    replicas:
      description: Each connected replica - C(address), C(state), C(offset), C(behind_bytes) (the primary's offset
        less the replica's) and C(lag_seconds) (since its last acknowledgement).
      type: list
      elements: dict
      returned: when RV(replication.role=primary)
    primary:
      description: The primary this replica follows (C(host:port)).
      type: str
      returned: when RV(replication.role=replica)
    link:
      description: V(up) or V(down), the replica's link to its primary.
      type: str
      returned: when RV(replication.role=replica)
  sample:
    role: primary
    replication_offset: 48211
    connected_replicas: 1
    replicas: [{address: "10.0.0.6:6379", state: online, offset: 48211, behind_bytes: 0, lag_seconds: 0}]
sentinel:
  description: What the Sentinels report about the service - C(primary), C(primary_flags), C(quorum),
    C(sentinels_known) (counting the one asked), C(replicas) (each C(address), C(flags), C(link)), C(pinned_primary)
    (the primary this task talked to), C(sentinels_answering) and C(sentinels_given).
  returned: when connected with O(sentinel)
  type: dict
  sample:
    service: orders
    primary: "10.0.0.5:6379"
    pinned_primary: "10.0.0.5:6379"
    primary_flags: master
    quorum: 2
    sentinels_known: 3
    replicas: [{address: "10.0.0.6:6379", flags: slave, link: ok}]
    sentinels_answering: ["10.0.0.7:26379", "10.0.0.8:26379", "10.0.0.9:26379"]
    sentinels_given: 3
alias_targets:
  description: For each name in O(aliases), the index it points at, or V(null) when it is not an alias.
  returned: always
  type: dict
  sample: {products_current: products}
server:
  description: The server's identity and capabilities.
  returned: always
  type: dict
  contains:
    redis_version:
      description: Redis server version.
      type: str
    redis_mode:
      description: V(standalone), V(cluster) or V(sentinel).
      type: str
    cluster_enabled:
      description: Whether Redis Cluster is enabled.
      type: bool
    modules:
      description: Loaded modules and their versions.
      type: dict
    search_version:
      description: Version of the search module.
      type: str
    json_version:
      description: Version of the JSON module, V(null) when not loaded.
      type: str
    vector_datatypes:
      description: Vector datatypes the server accepts.
      type: list
      elements: str
    vector_algorithms:
      description: Vector index algorithms the server accepts.
      type: list
      elements: str
    detected_by:
      description: V(probe) when datatypes and algorithms were probed, V(version) when inferred from versions.
      type: str
    alias_listing:
      description: Whether the server can list an index's aliases (FT.ALIASLIST).
      type: bool
    aof_enabled:
      description: Whether the append-only file is on (affects the disk cost of a migration).
      type: bool
    rdb_save_configured:
      description: Whether RDB snapshots are scheduled (V(null) when CONFIG is not permitted).
      type: bool
    used_memory_bytes:
      description: Memory used by the server.
      type: int
    maxmemory_bytes:
      description: The server's memory limit, V(0) when unlimited.
      type: int
    bg_index_sleep_gap:
      description:
        - Documents the search module indexes in the background per hold of the server's lock (C(BG_INDEX_SLEEP_GAP),
          set when the module loads); each hold pauses every client while an index builds.
        - V(null) when C(FT.CONFIG) is not permitted.
      type: int
"""

import os

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.liveness import with_liveness
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import describe_backups
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import IndexNotFound
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.capabilities import (
    detect_capabilities,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.catalog import (
    alias_targets,
    aliases_of,
    catalog,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.ftcreate import create_command
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.sentinel import sentinel_view
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import snapshot_index
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.topology import replication_info
from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import build_module, run_with_client


def describe(client, params: dict) -> dict:
    caps = detect_capabilities(client, probe=params["probe_capabilities"])
    declared = alias_targets(client, params["aliases"])
    result = {
        "changed": False,
        "server": caps.model_dump(),
        "alias_targets": declared,
        "indexes": [summary.model_dump() for summary in catalog(client, caps, declared)],
        "replication": replication_info(client),
    }
    view = sentinel_view(client)
    if view is not None:
        result["sentinel"] = view
    if params["backup_dir"]:
        result["migrations"] = with_liveness(client, describe_backups(params["backup_dir"], params["index"]))
    if params["index"]:
        try:
            snap = snapshot_index(client, params["index"])
        except IndexNotFound:
            result.update(exists=False, index=None)
            return result
        aliases, complete = aliases_of(client, snap.name, caps, declared)
        schema = snap.snapshot.index_schema
        result.update(
            exists=True,
            index={
                "name": snap.name,
                "requested_as": snap.requested_as,
                "aliases": aliases,
                "aliases_complete": complete,
                "schema": schema.to_dict(),
                "ft_create": create_command(schema),
                "unobserved": snap.snapshot.unobserved,
                "unrecognized": snap.snapshot.unrecognized,
                "stats": snap.stats.model_dump(),
            },
        )
    return result


def main() -> None:
    module = build_module(
        {
            "index": {"type": "str"},
            "aliases": {"type": "list", "elements": "str", "default": []},
            "backup_dir": {"type": "path"},
            "probe_capabilities": {"type": "bool", "default": True},
        },
    )
    backup_dir = module.params["backup_dir"]
    if backup_dir and os.path.exists(backup_dir) and not os.path.isdir(backup_dir):
        module.fail_json(
            msg=f"backup_dir {backup_dir} is a file, not a directory; give the backup directory of "
            "redis_index_migrate (the directory holding <index>-<plan id> subdirectories)",
            error_type="invalid_input",
        )
    run_with_client(module, lambda client, _settings: describe(client, module.params), index=module.params["index"])


if __name__ == "__main__":
    main()
