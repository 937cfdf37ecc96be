"""Put the get-pip stand-in where the installed ansible-test looks for a cached bootstrap script."""

import os
import re
import shutil
import sys

import ansible_test


def main() -> None:
    requirements = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
    with open(requirements, encoding="utf-8") as handle:
        match = re.search(r"pip='([0-9.]+)'", handle.read())
    if not match:
        sys.exit("cannot find the pip version ansible-test bootstraps")
    target = os.path.expanduser(f"~/.ansible/test/cache/get_pip_{match.group(1).replace('.', '_')}.py")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "get_pip_standin.py"), target)
    print(f"get-pip stand-in for pip {match.group(1)}: {target}")


if __name__ == "__main__":
    main()
