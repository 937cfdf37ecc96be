# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that carry a SHA-256 of their own content (plans, batch plans, backup headers, batch states),
and the timestamps they record.
"""
from __future__ import annotations

import datetime


def utc_now() -> str:
    # Microseconds: two migrations of one index in the same second must still sort by age.
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
