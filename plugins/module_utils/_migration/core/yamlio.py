# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the YAML files users give (patches, target schemas; plans this collection wrote) with errors that
name the file."""

from __future__ import annotations

from typing import Any, Callable

from .deps import yaml
from .errors import IndexOpsError, PlanInvalid, SchemaInvalid


def _load(path: str, refusal: Callable[[Exception], IndexOpsError]) -> Any:
    """The YAML in `path`; a file that cannot be read, is not YAML or is not text (a pickle, an archive:
    never decoded further) is refused with the error `refusal` makes of it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise refusal(err) from None


def read_yaml(path: str, what: str) -> Any:
    """A patch or target schema file; the refusals say where the YAML broke."""

    def refusal(err: Exception) -> IndexOpsError:
        if isinstance(err, OSError):
            return SchemaInvalid(f"cannot read {what} file {path}: {err.strerror}")
        if isinstance(err, UnicodeDecodeError):
            return SchemaInvalid(f"{what} file {path} is not a text (UTF-8 YAML) file", hint=f"give the {what} as YAML")
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return SchemaInvalid(f"{what} file {path} is not valid YAML{where}: {getattr(err, 'problem', err)}")

    return _load(path, refusal)


def read_written_yaml(path: str, what: str, hint: str) -> Any:
    """A YAML file this collection wrote (a plan, a batch plan), given back by a user: `what` names it
    (`plan file`), `hint` says which file to give instead."""

    def refusal(err: Exception) -> IndexOpsError:
        if isinstance(err, OSError):
            return PlanInvalid(f"cannot read {what} {path}: {err.strerror}")
        if isinstance(err, UnicodeDecodeError):
            return PlanInvalid(f"{what} {path} is not a text (UTF-8 YAML) file", hint=hint)
        return PlanInvalid(f"{what} {path} is not valid YAML: {str(err).splitlines()[0]}", hint=hint)

    return _load(path, refusal)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)
