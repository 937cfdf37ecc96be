# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs redis_index_batch and prints its progress in the job output (plugin_utils/_progress_action.py)."""

from __future__ import annotations

from ansible_collections.indexops.redis_search.plugins.plugin_utils._progress_action import ProgressActionModule


class ActionModule(ProgressActionModule):
    pass
