#!/usr/bin/env bash
# make test-matrix: unit, integration and sanity at both ends of what the collection claims to support.
#
#   oldest - Python 3.11, the lowest redis-py, pydantic, numpy, PyYAML (tests/matrix/oldest.txt) and the
#            lowest ansible-core of meta/runtime.yml's requires_ansible;
#   newest - the newest Python found (newer ansible-core releases need 3.12+), every dependency at the
#            newest version requirements.txt allows, the newest ansible-core.
# Each end gets a venv of its own under .build/matrix/ and prints the versions it ran with.
# MATRIX_ENDS="newest" runs one end; MATRIX_OLDEST_PYTHON / MATRIX_NEWEST_PYTHON choose the interpreters.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

newest_python() {
  for candidate in python3.13 python3.12 python3.11; do
    # pyenv puts shims on PATH for versions it does not activate: ask each one to run.
    if command -v "$candidate" >/dev/null && "$candidate" -c pass 2>/dev/null; then echo "$candidate"; return; fi
    for found in "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/"${candidate#python}".*/bin/"$candidate"; do
      if [ -x "$found" ]; then echo "$found"; return; fi
    done
  done
  echo python3
}

run_end() {
  local end=$1 python=$2 venv=.build/matrix/$1
  local -a pins=()
  [ "$end" = oldest ] && pins=(-c tests/matrix/oldest.txt)
  echo "=== $end: $python"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet --upgrade -r requirements.txt -r tests/matrix/requirements.txt "${pins[@]}"
  "$venv/bin/python" - <<'PY'
import importlib.metadata as m, platform
names = ("ansible-core", "redis", "pydantic", "numpy", "PyYAML")
print("versions: python " + platform.python_version() + ", " + ", ".join(f"{n} {m.version(n)}" for n in names))
PY
  # Two processes, as make test runs them: the unit tests load controller code (the action plugins), and from
  # ansible-core 2.21 on, a module run in a process that has it sends its warnings to the controller's display
  # instead of its result - what the integration tests read.
  "$venv/bin/pytest" tests/unit
  "$venv/bin/pytest" tests/integration
  VENV_BIN=$root/$venv/bin tests/sanity/run_sanity.sh
  echo "=== $end: passed"
}

for end in ${MATRIX_ENDS:-oldest newest}; do
  case $end in
    oldest) run_end oldest "${MATRIX_OLDEST_PYTHON:-python3.11}" ;;
    newest) run_end newest "${MATRIX_NEWEST_PYTHON:-$(newest_python)}" ;;
    *) echo "unknown matrix end $end (oldest, newest)" >&2; exit 2 ;;
  esac
done
