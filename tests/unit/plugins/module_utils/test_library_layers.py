# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The library's layering rule (docs/library.md), checked on every file's imports.

Each folder of `_migration/` may import only itself and the folders below it, `_quiesce/` only
`core/` and `redis/`, and no file may reach itself again through its imports (a circle), also
through an import made inside a function. The test reads the code as text (ast), runs nothing,
and names the file and the import that breaks the rule.
"""

from __future__ import annotations

import ast
import os
import sys
from typing import Dict, List, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")
PACKAGE = "ansible_collections.indexops.redis_search.plugins.module_utils"

# Folder -> the folders its files may import (their own included). Bottom to top; docs/library.md says why.
ALLOWED: Dict[str, Set[str]] = {
    "core": {"core"},
    "schema": {"core", "schema"},
    "redis": {"core", "schema", "redis"},
    "vectors": {"core", "schema", "redis", "vectors"},
    "backup": {"core", "redis", "backup"},  # the backup format knows no schema
    "planning": {"core", "schema", "redis", "vectors", "backup", "planning"},
    "apply": {"core", "schema", "redis", "vectors", "backup", "planning", "apply"},
    "rollback": {"core", "schema", "redis", "vectors", "backup", "planning", "apply", "rollback"},
    "batch": {"core", "schema", "redis", "vectors", "backup", "planning", "apply", "batch"},
}
QUIESCE_ALLOWED = {"core", "redis"}


def _files(folder: str) -> List[str]:
    found = []
    for directory, _dirs, names in os.walk(os.path.join(MODULE_UTILS, folder)):
        found += [os.path.join(directory, name) for name in names if name.endswith(".py")]
    return sorted(found)


def _module_of(path: str) -> str:
    """`_migration.apply.phases.online` for plugins/module_utils/_migration/apply/phases/online.py."""
    parts = os.path.relpath(path, MODULE_UTILS)[:-3].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: str) -> List[Tuple[int, str]]:
    """(line, module) of every library module the file imports, relative imports resolved, also those
    inside functions; `from X import a` names X.a where that is a module of the library."""
    module = _module_of(path)
    package = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith(PACKAGE + "."):
                target = node.module[len(PACKAGE) + 1 :]
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add((node.lineno, sub if _exists(sub) else target))
        elif isinstance(node, ast.Import):
            found |= {(node.lineno, a.name[len(PACKAGE) + 1 :]) for a in node.names if a.name.startswith(PACKAGE + ".")}
    return sorted(found)


def _exists(module: str) -> bool:
    base = os.path.join(MODULE_UTILS, *module.split("."))
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


def _folder(module: str) -> str:
    """The layer of `_migration.<folder>....`, or the top package (`_quiesce`, `_module_kit`)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "_migration" and len(parts) > 1 else parts[0]


def _where(path: str, line: int) -> str:
    return f"{os.path.relpath(path, ROOT)}:{line}"


def layer_violations() -> List[str]:
    found = []
    for path in _files("_migration"):
        own = _folder(_module_of(path))
        if own not in ALLOWED:
            if not path.endswith("__init__.py"):
                found.append(f"{_where(path, 1)} is in no layer: put it in one of {', '.join(ALLOWED)}")
            continue
        for line, target in imports(path):
            layer = _folder(target)
            if not target.startswith("_migration"):
                found.append(f"{_where(path, line)} imports {target}, which is outside the library")
            elif layer not in ALLOWED[own]:
                found.append(
                    f"{_where(path, line)} ({own}/) imports {target} ({layer}/), "
                    f"a layer it may not use: {own}/ uses only {', '.join(sorted(ALLOWED[own]))}"
                )
    for path in _files("_quiesce"):
        for line, target in imports(path):
            layer = _folder(target)
            if layer != "_quiesce" and (not target.startswith("_migration") or layer not in QUIESCE_ALLOWED):
                found.append(
                    f"{_where(path, line)} (_quiesce/) imports {target}: _quiesce/ uses only "
                    "_migration/core/ and _migration/redis/"
                )
    return found


def circles() -> List[List[str]]:
    """Each loop of imports among the library's files, as the modules in it."""
    graph = {}
    for path in _files("_migration") + _files("_quiesce"):
        module = _module_of(path)
        graph[module] = sorted({target for _line, target in imports(path) if target != module})
    found, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in graph.get(module, ()):
            if state.get(target) == "open":
                found.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_every_layer_imports_only_itself_and_the_layers_below():
    assert layer_violations() == []


def test_no_file_of_the_library_reaches_itself_through_its_imports():
    assert [" -> ".join(loop) for loop in circles()] == []


def mapped_files() -> List[str]:
    """The files docs/library.md lists under "Every file", as paths under plugins/module_utils/."""
    with open(os.path.join(ROOT, "docs", "library.md"), encoding="utf-8") as handle:
        text = handle.read()
    block = text.split("## Every file", 1)[1].split("```", 2)[1]
    found, folders = [], []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            found.append("/".join(folders + [name]))
    return sorted(found)


def test_the_map_in_the_docs_lists_every_file_of_the_library():
    """docs/library.md names each file and what it holds: a file added, moved or removed is a map to update."""
    actual = sorted(
        os.path.relpath(path, MODULE_UTILS)
        for path in _files("_migration") + _files("_quiesce")
        if not path.endswith("__init__.py")
    )
    assert mapped_files() == actual


def test_init_files_stay_empty():
    """ansible-test's empty-init sanity test: the rule lives in docs/library.md and here, not in __init__.py."""
    assert [path for path in _files("") if path.endswith("__init__.py") and os.path.getsize(path)] == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ..planning.plan import MigrationPlan\n", "(redis/) imports _migration.planning.plan (planning/)"),
        ("def f():\n    from ..batch import state\n", "(redis/) imports _migration.batch.state (batch/)"),
    ],
)
def test_an_import_of_a_higher_layer_is_named_with_its_file_and_line(tmp_path, monkeypatch, source, expected):
    """The check itself can fail: a redis/ file importing a plan, even inside a function, is reported."""
    fake = tmp_path / "module_utils"
    for folder in ("_migration/redis", "_migration/planning", "_migration/batch", "_quiesce"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    (fake / "_migration" / "__init__.py").write_text("")
    (fake / "_migration" / "planning" / "plan.py").write_text("")
    (fake / "_migration" / "batch" / "state.py").write_text("")
    (fake / "_migration" / "redis" / "wire.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "MODULE_UTILS", str(fake))
    found = layer_violations()
    assert len(found) == 1 and expected in found[0], found
    assert "redis/wire.py:" in found[0]


def test_a_circle_is_found(tmp_path, monkeypatch):
    fake = tmp_path / "module_utils"
    (fake / "_migration" / "redis").mkdir(parents=True)
    (fake / "_quiesce").mkdir()
    (fake / "_migration" / "redis" / "a.py").write_text("from .b import x\n")
    (fake / "_migration" / "redis" / "b.py").write_text("def f():\n    from .a import y\n")
    monkeypatch.setattr(sys.modules[__name__], "MODULE_UTILS", str(fake))
    assert circles() == [["_migration.redis.a", "_migration.redis.b", "_migration.redis.a"]]
