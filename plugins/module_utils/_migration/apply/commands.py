# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every command a migration or a rollback of a plan sends, with representative arguments (the real
index names, a real document key, the lock keys), for the ACL probe (redis/permissions.py) to check
before anything changes. Commands that Lua scripts send are listed too, because scripts run with the
caller's permissions.
"""

from __future__ import annotations

from typing import List, Tuple

from ..planning.modes import stem
from ..planning.plan import MigrationPlan
from ..redis.create_check import check_name
from ..redis.keyspace import key_from_text, renamed_key
from ..redis.lock import lock_key
from ..redis.permissions import Command

_ANY_SHA = "0" * 40


def _document_keys(plan: MigrationPlan) -> Tuple[bytes, bytes]:
    """A document key as it is before the migration and as it is after (they differ on a prefix change)."""
    if plan.source.key_sample:
        key = key_from_text(plan.source.key_sample[0])
    else:
        key = (plan.source_schema().index.prefix[0] + "__indexops_probe").encode()
    prefix = plan.rewrites.prefix
    return key, renamed_key(key, prefix.old, prefix.new) if prefix else key


def _lock_commands(name: str) -> List[Command]:
    key = lock_key(name)
    return [
        ("SET", key, "x", "NX", "PX", "1"),
        ("GET", key),
        ("PEXPIRE", key, "1"),
        ("PTTL", key),
        ("DEL", key),
        ("EVAL", "return 0", "1", key),
    ]


def _rewrite_commands(plan: MigrationPlan, old: bytes, new: bytes, cluster: bool) -> List[Command]:
    rewrites = plan.rewrites
    json_storage = rewrites.storage == "json"
    found: List[Command] = []
    if rewrites.any:
        found += [("EVALSHA", _ANY_SHA, "1", old), ("SCRIPT", "LOAD", "return 0")]
        for location, _size, _absent in plan.backup_entries():
            found.append(("JSON.GET", old, location) if json_storage else ("HGET", old, location))
        found.append(("SCAN", "0", "COUNT", "1"))
    for move in rewrites.moves:
        if json_storage:
            found += [
                ("JSON.GET", old, move.old_location),
                ("JSON.SET", old, move.new_location, "0"),
                ("JSON.DEL", old, move.old_location),
            ]
        else:
            found += [
                ("HGET", old, move.new_location),
                ("HSET", old, move.new_location, "x"),
                ("HDEL", old, move.old_location),
            ] + _in_place(old)
        found.append(("EXISTS", old))
    if rewrites.prefix:
        found += [("EXISTS", old), ("EXISTS", new)]
        if cluster:
            found += [("DUMP", old), ("PTTL", old), ("RESTORE", new, "0", "x"), ("DEL", old)]
        else:
            found.append(("RENAME", old, new))
    for quant in rewrites.quantize:
        found += [("EXISTS", new), ("HGET", new, quant.location), ("HSET", new, quant.location, "x")]
    layout = plan.online_layout
    if layout is not None and layout.copy_keys:
        # A prefix change online: copies under the new prefix, the old keys deleted after the swap.
        found += [("COPY", old, new), ("DEL", old), ("DEL", new), ("EXISTS", old), ("EXISTS", new)]
    if layout is not None and not json_storage:
        # Online: expand writes side fields and new names, contract removes them or renames in place.
        for side in layout.side_locations:
            found += [("HGET", old, side), ("HSET", old, side, "x"), ("HDEL", old, side)]
        found += _in_place(old)
        if plan.online.interim_index:
            found += [
                ("FT.CREATE", plan.online.interim_index, "SCHEMA", "f", "TEXT"),
                ("FT.INFO", plan.online.interim_index),
            ]
            found.append(("FT.DROPINDEX", plan.online.interim_index))
    return found


def _in_place(key: bytes) -> List[Command]:
    """What scripts.RENAME_FIELD sends to keep a renamed hash field in its place."""
    return [
        ("OBJECT", "ENCODING", key),
        ("HLEN", key),
        ("HGETALL", key),
        ("PTTL", key),
        ("DEL", key),
        ("PEXPIRE", key, "1"),
    ]


def migration_commands(plan: MigrationPlan, cluster: bool = False) -> List[Command]:
    """Every command (with representative arguments) that applying `plan` sends."""
    source, target, final = plan.source.index, plan.target_index, plan.final_index
    old, new = _document_keys(plan)
    found: List[Command] = [
        ("FT._LIST",),
        ("FT.INFO", source),
        ("FT.AGGREGATE", source, "*"),
        ("FT.CURSOR", "READ", source, "0"),
        ("FT.CURSOR", "DEL", source, "0"),
    ]
    found += _lock_commands(source)
    for name in dict.fromkeys([target, final]):
        if name != source:
            found += _lock_commands(name) + [("FT.INFO", name)]
    found += _rewrite_commands(plan, old, new, cluster)
    probe = check_name(target, "0" * 16)  # the create check's throwaway index
    found += [("FT.CREATE", probe, "SCHEMA", "f", "TEXT"), ("FT.DROPINDEX", probe)]
    found += [("FT.DROPINDEX", source), ("FT.CREATE", final, "SCHEMA", "f", "TEXT")]
    names = plan.online.names if plan.mode == "online" and plan.online else plan.source.aliases
    found += [("FT.ALIASUPDATE", alias, final) for alias in names]
    if plan.mode == "online":
        found.append(("FT.DROPINDEX", final))  # dropping the new index after a failure before the swap
    json_storage = plan.rewrites.storage == "json"
    found += [("FT.SEARCH", final, "*"), ("EXISTS", new)]
    for field in plan.target().vector_fields():
        location = plan.target().identifier(field)
        found.append(("JSON.GET", new, location) if json_storage else ("HGET", new, location))
    return found


def rollback_commands(plan: MigrationPlan, cluster: bool = False) -> List[Command]:
    """Every command (with representative arguments) that rolling `plan` back sends."""
    source, target = plan.source.index, plan.target_index
    old, new = _document_keys(plan)
    json_storage = plan.rewrites.storage == "json"
    found: List[Command] = [
        ("FT.INFO", source),
        ("FT.INFO", target),
        ("EVALSHA", _ANY_SHA, "2", old, new),
        ("SCRIPT", "LOAD", "return 0"),
        ("EXISTS", old),
        ("EXISTS", new),
    ]
    found += _lock_commands(source)
    if target != source:
        found += _lock_commands(target)
    for location, _size, _absent in plan.backup_entries():
        if json_storage:
            found += [("JSON.GET", new, location), ("JSON.SET", new, location, "0"), ("JSON.DEL", new, location)]
        else:
            found += [("HGET", new, location), ("HSET", new, location, "x"), ("HDEL", new, location)]
    if plan.rewrites.moves and not json_storage:
        found += _in_place(new)
    if plan.rewrites.prefix:
        found += (
            [("DUMP", new), ("PTTL", new), ("RESTORE", old, "0", "x"), ("DEL", new)]
            if cluster
            else [("RENAME", new, old)]
        )
    if plan.mode == "online" and plan.online:
        # Rebuilt beside the migration's index under the next generation name, then swapped in.
        rebuilt = f"{stem(plan.final_index)}--v0"
        found += _lock_commands(plan.final_index) + [
            ("FT.INFO", plan.final_index),
            ("FT.DROPINDEX", plan.final_index),
            ("FT.CREATE", rebuilt, "SCHEMA", "f", "TEXT"),
        ]
        found += [("FT.ALIASUPDATE", name, rebuilt) for name in plan.online.names]
        return found
    found += [("FT.DROPINDEX", target), ("FT.CREATE", source, "SCHEMA", "f", "TEXT")]
    found += [("FT.ALIASUPDATE", alias, source) for alias in plan.source.aliases]
    return found
