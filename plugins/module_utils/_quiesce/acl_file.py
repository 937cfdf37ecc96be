# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server's ACL file (`aclfile`), around a window.

A quiesce never saves the ACL. But anyone's `ACL SAVE` during the window writes the quiesced rules into
the file, and after the release a restart (or `ACL LOAD`) would load them and lock the application out.
So the quiesce notes whether the file held exactly the server's users before the window and how many
`ACL SAVE`s the server had run; after the release, the file is made to match again with `ACL SAVE`
when it matched before, or when someone saved during the window (the file then holds the window's
rules, and what it held before is gone anyway). Otherwise a difference is reported, not saved: the
file differed before the window, and saving would persist what someone left unsaved.

The file can only be read where it is - when this runs on the Redis host. Elsewhere, the `ACL SAVE`
counter of `INFO commandstats` still says whether anyone saved during the window.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import redis_exceptions
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.resp import decode

from .write_commands import command_stats


def path_of(client) -> Optional[str]:
    """The server's aclfile; "" when it has none, None when it cannot be asked (no permission, or CONFIG
    renamed away as managed services do)."""
    try:
        reply = decode(client.config_get("aclfile"))
    except redis_exceptions.ResponseError:
        return None
    return str(reply.get("aclfile", "") or "") if isinstance(reply, dict) else ""


def read_lines(path: str) -> Optional[List[str]]:
    """The file's user lines, or None when it cannot be read from here."""
    try:
        with open(path, encoding="utf-8", errors="backslashreplace") as handle:
            return [line.strip() for line in handle if line.strip()]
    except OSError:
        return None


def matches(file_lines: Optional[List[str]], lines: Dict[str, str]) -> Optional[bool]:
    """Whether the file holds exactly the server's users (ACL SAVE writes their ACL LIST lines); None unknown."""
    if file_lines is None:
        return None
    return sorted(file_lines) == sorted(lines.values())


def save_calls(client) -> int:
    return command_stats(client.info("commandstats")).get("acl|save", {}).get("calls", 0)


def before_window(client, lines: Dict[str, str], run_id: str) -> Optional[Dict[str, Any]]:
    """What the release needs to know about the file, read before the first ACL change; None without one."""
    path = path_of(client)
    if not path:
        return {"path": None} if path is None else None
    return {
        "path": path,
        "matched": matches(read_lines(path), lines),
        "save_calls": save_calls(client),
        "run_id": run_id,
    }


def after_release(
    client,
    recorded: Optional[Dict[str, Any]],
    lines: Dict[str, str],
    quiesced: Dict[str, str],
    run_id: str,
    check_mode: bool = False,
) -> Dict[str, Any]:
    """Make the file match the restored users where that is right; report what was found and done.
    `lines` are the server's ACL LIST lines now, `quiesced` each user's line during the window."""
    if not recorded:
        return {"report": None, "warnings": []}
    path = recorded.get("path")
    if not path:
        return {
            "report": {"path": None, "saved": False},
            "warnings": [
                "the migrating user may not read CONFIG aclfile: whether the server keeps its users in "
                "an ACL file, and whether an ACL SAVE during the window left quiesced rules in it, is "
                "unknown"
            ],
        }
    calls = save_calls(client)
    same_server = recorded.get("run_id") == run_id and calls >= recorded.get("save_calls", 0)
    saved_meanwhile = calls - recorded.get("save_calls", 0) if same_server else None
    file_lines = read_lines(path)
    matches_now = matches(file_lines, lines)
    report = {
        "path": path,
        "matched_before": recorded.get("matched"),
        "matches_now": matches_now,
        "saves_during_window": saved_meanwhile,
        "saved": False,
    }
    warnings: List[str] = []
    if matches_now:
        return {"report": report, "warnings": warnings}
    if recorded.get("matched") or saved_meanwhile:
        report["saved"] = True
        if not check_mode:
            client.execute_command("ACL", "SAVE")
            report["matches_now"] = matches(read_lines(path), lines)
        return {"report": report, "warnings": warnings}
    in_file = set(file_lines or [])
    stuck = sorted(name for name, line in quiesced.items() if line in in_file)
    if stuck:
        warnings.append(
            f"the ACL file {path} holds the quiesced rules of {', '.join(stuck)} (an ACL SAVE "
            "during the window?) and did not match the server's users before the window either: not "
            "saved; a restart or ACL LOAD would deny them writes - run ACL SAVE or fix the file"
        )
    elif file_lines is not None:
        warnings.append(
            f"the ACL file {path} differs from the server's users, as it did before the window: "
            "not saved (a restart or ACL LOAD loads the file)"
        )
    elif saved_meanwhile is None:
        warnings.append(
            f"the server keeps its users in {path}, which cannot be read from here, and restarted or "
            "had its statistics reset during the window: whether an ACL SAVE wrote quiesced rules into "
            "it is unknown - check the file (ACL SAVE makes it hold what the server has)"
        )
    return {"report": report, "warnings": warnings}
