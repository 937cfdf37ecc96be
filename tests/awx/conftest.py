"""Fixtures of the AWX job tests: the collection's tarball (built once), two private Redis servers with the demo
index and users, and a fresh AWX site (project, inventory, credential) per test."""

from __future__ import annotations

import pytest
from awx_job import AwxSite, build_tarball, redis_inventory
from fleet import Fleet
from quiesce_setup import MIGRATOR


@pytest.fixture(scope="session")
def tarball(tmp_path_factory) -> str:
    return build_tarball(str(tmp_path_factory.mktemp("dist")))


@pytest.fixture(scope="session")
def fleet():
    servers = Fleet(2).start()
    yield servers
    servers.stop()


@pytest.fixture
def ready(fleet):
    """Both servers: empty, then the products index (120 hashes, float32) and the users migrator, app."""
    fleet.reset()
    return fleet


@pytest.fixture
def awx(ready, tarball, tmp_path) -> AwxSite:
    """The site of docs/awx.md: storage that outlives the jobs under tmp_path, the migrating user's name in
    redis_connection and its password from the credential."""
    urls = {host: server.url for host, server in zip(ready.hosts, ready.servers)}
    inventory = redis_inventory(
        urls,
        {
            "redis_connection": {"username": MIGRATOR[0]},
            "indexops_backup_dir": str(tmp_path / "storage" / "backups"),
            "indexops_quiesce_state_dir": str(tmp_path / "storage" / "quiesce"),
        },
    )
    return AwxSite(
        workdir=str(tmp_path / "awx"),
        tarball=tarball,
        inventory=inventory,
        credential={"REDIS_USERNAME": MIGRATOR[0], "REDIS_PASSWORD": MIGRATOR[1]},
    )
