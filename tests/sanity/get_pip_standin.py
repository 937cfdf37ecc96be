"""Stand-in for the get-pip.py bootstrap script ansible-test downloads.

ansible-test sanity creates virtual environments and bootstraps pip in them with a script from
ci-files.testing.ansible.com, which these machines cannot reach. `make test` copies this file to
the cache path ansible-test checks first (~/.ansible/test/cache/get_pip_<version>.py). It gets pip
from the standard library's ensurepip, then installs the requested packages from the package index.
"""

import subprocess
import sys


def main() -> None:
    # get-pip.py options that pip's own installer does not know.
    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install", *args])


if __name__ == "__main__":
    main()
