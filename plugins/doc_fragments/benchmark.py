# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark record option of the modules that migrate (argspec: module_utils/_module_kit.py)."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  benchmark_out:
    description:
      - Write a machine-readable record of the run's timings and throughput (YAML) here, replaced atomically -
        per phase its seconds, documents, documents per second, bytes and bytes per second, then the downtime,
        the run's wall-clock seconds and the peak resident memory of the module and of its workers (for a batch,
        that record for each index it migrated). Written after a run that changed something, also when it
        failed; not in check mode. The format is described in the collection's C(docs/formats.md).
      - Its directory must exist and be writable (checked before anything changes).
    type: path
"""
