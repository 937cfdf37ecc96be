"""Run one migration in a process of its own (so a test can SIGKILL it): argv[1] is a JSON object
with url, plan (path), backup_dir and options; optionally fsize_limit (bytes any file this process
writes may reach: a full disk without a tiny filesystem). Prints {"changed", "result"} on success,
{"failed": message} with exit code 1 on a library error."""

from __future__ import annotations

import json
import os
import resource
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), ".build", "collections"))

import redis  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import (  # noqa: E402
    migrate,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (  # noqa: E402
    MigrateOptions,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (  # noqa: E402
    IndexOpsError,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import (  # noqa: E402
    read_plan,
)


def main() -> int:
    args = json.loads(sys.argv[1])
    if args.get("fsize_limit"):
        # Past the limit write() fails with EFBIG instead of the process being killed by SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args["fsize_limit"], args["fsize_limit"]))
    client = redis.Redis.from_url(args["url"])
    try:
        outcome = migrate(
            client,
            lambda: redis.Redis.from_url(args["url"]),
            read_plan(args["plan"]),
            args["backup_dir"],
            MigrateOptions(**args.get("options", {})),
        )
    except IndexOpsError as err:
        print(json.dumps({"failed": str(err), "details": err.details}, default=str))
        return 1
    print(json.dumps({"changed": outcome.changed, "result": outcome.report.result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
