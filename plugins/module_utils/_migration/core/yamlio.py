# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the YAML files users give (patches, target schemas; plans this collection wrote) with errors that
name the file."""
from __future__ import annotations

from typing import Any

from .deps import yaml
from .errors import PlanInvalid, SchemaInvalid


def read_yaml(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as err:
        raise SchemaInvalid(f"cannot read {what} file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SchemaInvalid(f"{what} file {path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    except UnicodeDecodeError:  # a binary file (a pickle, an archive): never decoded further
        raise SchemaInvalid(f"{what} file {path} is not a text (UTF-8 YAML) file",
                            hint=f"give the {what} as YAML") from None


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


def read_written_yaml(path: str, what: str, hint: str) -> Any:
    """A YAML file this collection wrote (a plan, a batch plan), given back by a user: `what` names it
    (`plan file`), `hint` says which file to give instead."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as err:
        raise PlanInvalid(f"cannot read {what} {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise PlanInvalid(f"{what} {path} is not valid YAML: {str(err).splitlines()[0]}", hint=hint) from None
    except UnicodeDecodeError:  # a binary file (a pickle, an archive): never decoded further
        raise PlanInvalid(f"{what} {path} is not a text (UTF-8 YAML) file", hint=hint) from None
