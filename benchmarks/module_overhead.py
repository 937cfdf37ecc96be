#!/usr/bin/env python
"""What running a migration as an Ansible task costs on top of the library call. (`make bench-module`;
docs/benchmarks.md.)

    python benchmarks/module_overhead.py [--docs 20000] [--dims 128] [--runs 3]

Per run, on a private Redis with search and the same seeded documents (FLAT, float32 -> float16):
    library   migrate() of a plan file, in this process (imports already paid);
    module    `ansible localhost -m indexops.redis_search.redis_index_migrate` with the same plan file;
and, to say where the difference goes:
    ansible   `ansible localhost -m ansible.builtin.ping`: Ansible's own cost of one task (start-up,
              inventory, AnsiballZ packing, a Python for the module);
    imports   a fresh Python importing the module (its module_utils, redis-py, pydantic, numpy) minus
              a fresh Python doing nothing.
Exits 1 when a migration fails, 2 when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import INDEX, BenchError, wait_indexed  # noqa: E402  pylint: disable=wrong-import-position
from migrate_throughput import create_index, load  # noqa: E402  pylint: disable=wrong-import-position
from redis_search_server import RedisSearchServer, ServerError  # noqa: E402  pylint: disable=wrong-import-position

FLOAT16 = {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}}
MODULE = "indexops.redis_search.redis_index_migrate"
IMPORT = "import ansible_collections.indexops.redis_search.plugins.modules.redis_index_migrate"


def _ansible(args: list, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible"),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(f"ansible {' '.join(args[:2])} failed: {done.stdout.strip()[-400:]}")
    return seconds


def _python(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": COLLECTIONS})
    return time.perf_counter() - start


def _fresh(client, docs: int, dims: int, seed: int) -> None:
    client.flushall()
    create_index(client, dims, "flat", (16, 200))
    load(client, docs, dims, seed)
    wait_indexed(client, docs)


def _plan(client, tmp: str, backup_dir: str) -> str:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning import planner
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema import patch

    plan = planner.create_plan(client, INDEX, patch=patch.parse_patch(FLOAT16), backup_dir=backup_dir)
    path = os.path.join(tmp, "plan.yaml")
    write_plan(plan, path)
    return path


def _library(client, url: str, plan_path: str, backup_dir: str) -> float:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import migrate
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
        MigrateOptions,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import read_plan
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis import connection

    settings = connection.ConnectionSettings(url=url)
    own = connection.connect(settings)
    start = time.perf_counter()
    outcome = migrate(
        own,
        lambda: connection.connect(settings),
        read_plan(plan_path),
        backup_dir,
        MigrateOptions(accept_data_loss=True),
    )
    seconds = time.perf_counter() - start
    own.close()
    if outcome.report.result != "succeeded":
        raise RuntimeError(f"library migration: {outcome.report.result}")
    return seconds


def run(args) -> int:
    try:
        server = RedisSearchServer().start()
    except ServerError as err:
        print(f"module_overhead: cannot start a Redis with search: {err}", file=sys.stderr)
        return 2
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_HOME": os.path.join(ROOT, ".build", "ansible"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    rows = {"library": [], "module": [], "ansible": [], "imports": []}
    client = redis.Redis.from_url(server.url, protocol=2)
    try:
        for number in range(1, args.runs + 1):
            for how in ("library", "module"):
                with tempfile.TemporaryDirectory(prefix="module-overhead-") as tmp:
                    backup_dir = os.path.join(tmp, "backups")
                    _fresh(client, args.docs, args.dims, args.seed)
                    plan_path = _plan(client, tmp, backup_dir)
                    if how == "library":
                        seconds = _library(client, server.url, plan_path, backup_dir)
                    else:
                        seconds = _ansible(
                            [
                                "-m",
                                MODULE,
                                "-a",
                                json.dumps(
                                    {
                                        "plan_file": plan_path,
                                        "backup_dir": backup_dir,
                                        "redis_url": server.url,
                                        "accept_data_loss": True,
                                    }
                                ),
                            ],
                            env,
                        )
                    rows[how].append(seconds)
            rows["ansible"].append(_ansible(["-m", "ansible.builtin.ping"], env))
            rows["imports"].append(_python(IMPORT) - _python("pass"))
            print(
                f"  run {number}: " + ", ".join(f"{name} {values[-1]:.2f} s" for name, values in rows.items()),
                flush=True,
            )
    except (BenchError, RuntimeError, subprocess.CalledProcessError) as err:
        print(f"module_overhead: {err}", file=sys.stderr)
        return 1 if isinstance(err, RuntimeError) else 2
    finally:
        client.close()
        server.stop()
    med = {name: statistics.median(values) for name, values in rows.items()}
    extra = med["module"] - med["library"]
    print(f"\n{args.docs:,} x {args.dims} FLAT, float32 -> float16, medians of {args.runs}:")
    print(f"  library migrate()                 {med['library']:6.2f} s")
    print(f"  module task (ansible -m)          {med['module']:6.2f} s   +{extra:.2f} s")
    print(f"    of which one task of Ansible    {med['ansible']:6.2f} s   (ansible -m ping)")
    print(f"    of which the module's imports   {med['imports']:6.2f} s   (fresh Python, minus an empty one)")
    print(f"    rest                            {extra - med['ansible'] - med['imports']:6.2f} s")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
