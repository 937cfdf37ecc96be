# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module needs on the host that runs it: requirements.txt, as documentation (a test
compares the two). Every module extends this fragment."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options: {}
requirements:
  - redis (the Python client) >= 5.0, < 9
  - pydantic >= 2.5, < 3
  - PyYAML >= 6.0
  - numpy >= 1.24
"""
