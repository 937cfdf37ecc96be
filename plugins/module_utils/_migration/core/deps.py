# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Third-party imports, guarded.

Every other file of the library imports redis, pydantic, PyYAML and NumPy from here, so that a
missing library is reported once, by name, instead of as a traceback from deep inside an import.
When pydantic is missing, small stand-ins keep the model classes importable (ansible-test imports
every file in an environment without third-party packages); nothing works until it is installed.
"""

from __future__ import annotations

import traceback

__all__ = [
    "MISSING",
    "BaseModel",
    "ConfigDict",
    "Field",
    "ValidationError",
    "field_validator",
    "model_validator",
    "missing",
    "numpy",
    "redis",
    "redis_exceptions",
    "yaml",
]

# Library name (as pip knows it) -> traceback of the failed import.
MISSING: dict[str, str] = {}

try:
    import redis
    from redis import exceptions as redis_exceptions
except ImportError:
    redis = None
    redis_exceptions = None
    MISSING["redis"] = traceback.format_exc()

try:
    import yaml
except ImportError:
    yaml = None
    MISSING["PyYAML"] = traceback.format_exc()

try:
    import numpy
except ImportError:
    numpy = None
    MISSING["numpy"] = traceback.format_exc()

try:
    from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
except ImportError:
    MISSING["pydantic"] = traceback.format_exc()

    class BaseModel:  # type: ignore[no-redef]
        """Stand-in: lets class definitions import; instances are unusable."""

        def __init__(self, *args, **kwargs):
            raise RuntimeError("pydantic is required")

    class ValidationError(Exception):  # type: ignore[no-redef]
        """Stand-in for pydantic.ValidationError."""

    def ConfigDict(**kwargs):  # type: ignore[no-redef]  # pylint: disable=invalid-name
        return kwargs

    def Field(default=None, **kwargs):  # type: ignore[no-redef]  # pylint: disable=invalid-name,unused-argument
        return default

    def field_validator(*args, **kwargs):  # type: ignore[no-redef]  # pylint: disable=unused-argument
        return lambda func: func

    def model_validator(*args, **kwargs):  # type: ignore[no-redef]  # pylint: disable=unused-argument
        return lambda func: func


def missing(*names: str) -> dict[str, str]:
    """Return {library: traceback} for those of `names` that failed to import (all when none given)."""
    wanted = names or tuple(MISSING)
    return {name: MISSING[name] for name in wanted if name in MISSING}
