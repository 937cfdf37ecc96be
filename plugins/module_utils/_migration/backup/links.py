# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup directory holds only the files this collection wrote there: never a symbolic link.

The checksums prove what a file holds, not where it is: a link makes the backup depend on a file
elsewhere (which may change or go), and the files a run appends to or replaces (ledgers, the data
file of a backup phase that starts again) would be written through the link, outside the backup.
So a backup with a link in it is refused before anything is read from or written to it.
"""

from __future__ import annotations

import os

from ..core.errors import BackupInvalid


def refuse_links(directory: str) -> None:
    """Raise BackupInvalid when the backup directory, or anything in it, is a symbolic link."""
    found = [directory] if os.path.islink(directory) else []
    if not found and os.path.isdir(directory):
        found = [
            os.path.join(directory, name)
            for name in sorted(os.listdir(directory))
            if os.path.islink(os.path.join(directory, name))
        ]
    if found:
        raise BackupInvalid(
            f"backup {directory} holds a symbolic link ({found[0]} -> {os.readlink(found[0])}): "
            "refused, nothing was read or written",
            hint="a backup's files are never links; restore the directory from a copy (real files)",
        )
