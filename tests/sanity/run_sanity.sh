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
# ansible-test keeps its venvs, caches and the get-pip stand-in in ~/.ansible/test (~ from HOME, with no
# setting of its own): it gets a HOME under .build/, kept between runs so that its venvs are reused.
# pip's own configuration and cache stay the user's (XDG_CONFIG_HOME, XDG_CACHE_HOME).
export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config} XDG_CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}
if [ -z "${PIP_CONFIG_FILE:-}" ] && [ -f "$HOME/.pip/pip.conf" ]; then export PIP_CONFIG_FILE=$HOME/.pip/pip.conf; fi
export HOME=$root/.build/sanity-home
mkdir -p "$HOME"
"$bin/python" tests/sanity/install_get_pip.py
if [ -e tests/sanity/ignore-2.19.txt ] || ls tests/sanity/ignore-*.txt >/dev/null 2>&1; then
  echo "sanity ignore files are not allowed" >&2
  exit 1
fi
python=$("$bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PATH="$bin:$PATH" "$bin/ansible-test" sanity --local --python "$python" --color no "$@"
