"""Atomic file writing: the old content or the new one, never half, and no temporary file left."""

from __future__ import annotations

import os

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import PlanInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.files import write_atomic


def test_the_file_is_replaced_whole_private_and_alone(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_atomic(str(path), b"new", prefix=".plan-")
    assert path.read_bytes() == b"new"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path) == ["plan.yaml"]


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(str(path), "not bytes")  # fails after the temporary file was made
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_the_caller_names_the_error_of_a_directory_it_cannot_write_in(tmp_path):
    missing = str(tmp_path / "no" / "plan.yaml")
    with pytest.raises(FileNotFoundError):
        write_atomic(missing, b"x")
    with pytest.raises(PlanInvalid, match="cannot write plan file .*: No such file or directory"):
        write_atomic(
            missing, b"x", refused=lambda err: PlanInvalid(f"cannot write plan file {missing}: {err.strerror}")
        )
