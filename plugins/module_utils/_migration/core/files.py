# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files replaced whole: a crash leaves either the old content or the new one, never half of either.

Every file the library writes in one piece - a plan, a backup header, a batch state, a report, a
benchmark record, the quiesce state - goes through `write_atomic`: a temporary file beside it (mode
0600: some hold password hashes), written and fsynced, renamed over the path, then the directory
fsynced so that the rename survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable, Optional

FILE_MODE = 0o600
DIR_MODE = 0o700


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: str, data: bytes, prefix: str = ".tmp-", refused: Optional[Callable[[OSError], Exception]] = None
) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content. `refused`
    turns the error of creating the temporary file (no such directory, no right to write there) into
    the caller's own; errors after that are raised as they are."""
    directory = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    except OSError as err:
        if refused is None:
            raise
        raise refused(err) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(directory)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
