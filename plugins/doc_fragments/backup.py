# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup options of the modules that change data (argspec: module_utils/_module_kit.py)."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  backup_dir:
    description:
      - Directory that holds the backups, on the host running the module. Each migration gets its own
        subdirectory C(<index>-<plan id>) (mode 0700, files 0600) with a header, a copy of the plan and the
        backup data; several indexes and plans can share one O(backup_dir).
      - Backups are never deleted or overwritten by this collection; remove them yourself when no longer needed.
      - Must be a directory (it is created when missing) that the module's user can write.
    type: path
    required: true
  wait_timeout:
    description:
      - Seconds to wait for an index to finish indexing (the source before starting, the new index at the end).
        When it runs out the task fails; running it again continues waiting.
    type: float
    default: 600
"""
