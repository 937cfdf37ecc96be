#!/usr/bin/env bash
# ansible-test sanity, every test, no ignore file, on a copy of this checkout.
#
# ansible-test needs the collection at .../ansible_collections/<namespace>/<name>/ and lists files
# with git, so the copy gets a repository of its own (this checkout's .gitignore hides .build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${VENV_BIN:-$root/.venv/bin}
copy=$root/.build/sanity/ansible_collections/indexops/redis_search

rm -rf "$root/.build/sanity"
mkdir -p "$copy"
cd "$root"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$copy"
cd "$copy"
git init -q
git add -A
"$bin/python" tests/sanity/install_get_pip.py
if [ -e tests/sanity/ignore-2.19.txt ] || ls tests/sanity/ignore-*.txt >/dev/null 2>&1; then
  echo "sanity ignore files are not allowed" >&2
  exit 1
fi
python=$("$bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PATH="$bin:$PATH" "$bin/ansible-test" sanity --local --python "$python" --color no "$@"
