# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options that describe a change to plan (argspec: module_utils/_plan_inputs.py)."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  index:
    description:
      - Name (or alias) of the index to change.
    type: str
  patch:
    description:
      - The change as a schema patch (inline), in the reference migrator's format -
        C(version=1) and C(changes) with any of C(add_fields), C(remove_fields), C(update_fields),
        C(rename_fields) and C(index).
      - Unknown sections, keys, attributes and fields are errors that name the valid choices.
      - Every value must be within what the server safely accepts, measured on redis-server 8.2.3 with search 2.10.5 -
        for example C(dims) 1-32768, HNSW C(m) 2-4096 (M 1 and M 32768 or more crash the server),
        C(ef_construction) and C(ef_runtime) 1-1048576, C(block_size) 1-1048576, C(initial_cap) 0-4194304 (and at
        most 1 GiB of vectors allocated at once), finite C(weight) 0-1000000, finite C(epsilon) 0-1000, finite
        C(score) 0-1, a C(language) the server knows, C(phonetic_matcher) V(dm:en), V(dm:fr), V(dm:pt) or V(dm:es), a
        C(separator) that is a space, a tab or ASCII punctuation, and names, prefixes, filters and stopwords without
        control characters. A value outside is an error naming the attribute, the value and the accepted range.
      - The same applies to the whole target, including values carried over from the live index.
      - Mutually exclusive with O(patch_file), O(target_schema) and O(target_schema_file).
    type: dict
  mode:
    description:
      - How the migration reaches the target.
      - V(online) builds the target beside the live index, validates it against the live index and swaps it in with one
        MULTI/EXEC - queries by the index's name (and aliases) never fail. The new index gets a name of its own
        (V(products--v2), or the new name of a rename) and the old name becomes an alias of it. A change that rewrites
        hash documents (a vector datatype change, a field rename that moves data) runs as expand (the new bytes
        written beside the old ones, where the live index does not read), build, swap and contract (the old bytes
        removed), ending with the documents exactly as V(drop_recreate) leaves them; a datatype change in place takes
        two builds. It needs room in memory for the new bytes and the second index (below 90% of C(maxmemory)); the
        plan gives the figures, and is blocked when they do not fit. A prefix change and a JSON field move are not run
        online by this version.
      - V(drop_recreate) drops the index, rewrites the documents and creates the target; queries fail until the new
        index has indexed everything.
      - V(auto) is V(online) where possible and V(drop_recreate) otherwise (with a warning when only memory stood in
        the way). The plan says which, why, what online costs, and how long each path is estimated to take.
    type: str
    choices: [auto, online, drop_recreate]
    default: auto
  cutover:
    description:
      - How an online migration hands the index's names over to the new index.
      - V(swap) moves them at once in the same run (then, for a datatype change, clients must query with the new
        datatype).
      - V(side_by_side) stops once the new index serves beside the source under its own name (and
        O(side_by_side_alias)), so that clients move to it at their own pace; C(redis_index_migrate) with C(finish)
        then swaps and contracts. Needs an online migration (the plan is blocked otherwise).
    type: str
    choices: [swap, side_by_side]
    default: swap
  side_by_side_alias:
    description:
      - With O(cutover=side_by_side), an alias that leads to the new index while it serves beside the source, and
        keeps leading to the migration's final index after the swap. Must not name an existing index or alias.
    type: str
  patch_file:
    description:
      - Path of a YAML schema patch (same format as O(patch)), on the host running the module.
    type: path
  target_schema:
    description:
      - The complete schema the index should have (C(index) and C(fields) sections, as C(redis_index_info) returns
        it). Changes are derived from the difference; renaming fields needs a patch.
      - Every value must be within what the server safely accepts (see O(patch)).
    type: dict
  target_schema_file:
    description:
      - Path of a YAML target schema (same format as O(target_schema)).
    type: path
  aliases:
    description:
      - Aliases of the index. FT.DROPINDEX drops every alias of an index, and servers before search 8.10 cannot
        list them, so name them here to have them moved to the new index. Each must point at O(index).
    type: list
    elements: str
    default: []
"""

    # The sampling and batching options, also used by redis_index_batch (per index of the batch).
    SAMPLING = r"""
options:
  audit_sample_size:
    description:
      - How many documents of each index to read to check their vectors' sizes and measure key lengths (bounded,
        read-only). V(0) skips the audit. An index with no more documents than this is audited completely. Not
        negative.
    type: int
    default: 1000
  audit_all:
    description:
      - Audit every document of each index instead of a sample (reads the whole index; slow on large ones). Makes
        the backup size estimate exact.
    type: bool
    default: false
  key_sample_size:
    description:
      - How many document keys of each index the plan records, for validation after the migration. Not negative.
    type: int
    default: 20
  batch_size:
    description:
      - Documents per pipelined batch (and per backup block). From V(1) to V(100000).
    type: int
    default: 500
"""
