"""Import a collection tarball the way Automation Hub and Galaxy do (galaxy-importer), and fail on
any error or warning it reports - a warning on upload is a rejection waiting to happen."""

from __future__ import annotations

import os
import subprocess
import sys


def main(tarball: str) -> int:
    # The importer writes importer_result.json into its working directory: next to the tarball, not the checkout.
    tarball = os.path.abspath(tarball)
    run = subprocess.run(
        [sys.executable, "-m", "galaxy_importer.main", tarball],
        capture_output=True,
        text=True,
        check=False,
        cwd=os.path.dirname(tarball),
    )
    output = run.stdout + run.stderr
    complaints = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
    for line in output.splitlines():
        if not line.startswith(("Loading ", "  ")):  # one line per plugin file; the rest is the verdict
            print(line)
    if run.returncode != 0 or complaints:
        print(f"galaxy-importer rejected {tarball} (exit {run.returncode}):", *complaints, sep="\n  ", file=sys.stderr)
        return 1
    print(f"galaxy-importer: {tarball} imports cleanly")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: import_check.py <collection tarball>")
    sys.exit(main(sys.argv[1]))
