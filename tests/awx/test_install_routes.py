"""The install routes of docs/awx.md, from the tarball `make dist` builds: collections/requirements.yml with
`type: url` (served here on loopback; `type: file` is what every job in test_awx_jobs.py installs from), and the
execution environment file playbooks/awx/execution-environment.yml, which `ansible-builder create` turns into a
build context whose galaxy step installs the collection and whose introspection finds its requirements."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading

import pytest
import yaml
from awx_job import BIN, ROOT, quiet_ansible_env

pytestmark = pytest.mark.playbook

EE_FILE = os.path.join(ROOT, "playbooks", "awx", "execution-environment.yml")


def installed_version(collections_dir: str) -> str:
    manifest = os.path.join(collections_dir, "ansible_collections", "indexops", "redis_search", "MANIFEST.json")
    with open(manifest, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["collection_info"]["version"]


def galaxy_version() -> str:
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["version"]


def test_requirements_yml_installs_the_tarball_from_a_url(tarball, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=os.path.dirname(tarball))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{os.path.basename(tarball)}"
        requirements = tmp_path / "requirements.yml"
        requirements.write_text(yaml.safe_dump({"collections": [{"name": url, "type": "url"}]}))
        subprocess.run(
            [
                os.path.join(BIN, "ansible-galaxy"),
                "collection",
                "install",
                "-r",
                str(requirements),
                "-p",
                str(tmp_path / "collections"),
            ],
            check=True,
            capture_output=True,
            env=quiet_ansible_env(str(tmp_path)),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert installed_version(str(tmp_path / "collections")) == galaxy_version()


def test_execution_environment_file_builds_a_context_that_installs_the_collection(tarball, tmp_path):
    with open(EE_FILE, encoding="utf-8") as handle:
        definition = yaml.safe_load(handle)
    # The file names the tarball of this version: a version bump must update it.
    (build_file,) = definition["additional_build_files"]
    assert build_file["src"] == os.path.basename(tarball), (
        "playbooks/awx/execution-environment.yml names another version"
    )
    shutil.copy(EE_FILE, tmp_path / "execution-environment.yml")
    shutil.copy(tarball, tmp_path)
    env = quiet_ansible_env(str(tmp_path))
    subprocess.run(
        [
            os.path.join(BIN, "ansible-builder"),
            "create",
            "-f",
            "execution-environment.yml",
            "-c",
            "context",
            "--output-filename",
            "Containerfile",
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
        env=env,
    )
    build = tmp_path / "context" / "_build"
    assert (build / "collections" / os.path.basename(tarball)).is_file()
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile

    # The galaxy stage of the build, as the Containerfile runs it (WORKDIR /build is the context's _build).
    share = tmp_path / "usr-share-ansible"
    subprocess.run(
        [
            os.path.join(BIN, "ansible-galaxy"),
            "collection",
            "install",
            "-r",
            "requirements.yml",
            "--collections-path",
            str(share / "collections"),
        ],
        check=True,
        capture_output=True,
        cwd=build,
        env=env,
    )
    assert installed_version(str(share / "collections")) == galaxy_version()
    # The builder stage's introspection: the collection's meta/execution-environment.yml brings its requirements.
    found = subprocess.run(
        [
            os.path.join(BIN, "python"),
            str(build / "scripts" / "introspect.py"),
            "introspect",
            str(share / "collections"),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    python = " ".join(yaml.safe_load(found.stdout)["python"])
    for requirement in ("redis", "pydantic", "numpy"):
        assert f"{requirement}>=" in python
