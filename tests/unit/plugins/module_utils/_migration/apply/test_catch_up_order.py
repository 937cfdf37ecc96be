"""Where the catch-up runs among an online migration's phases (apply/phases/catch_up.py `before_swap`)."""

from __future__ import annotations

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.catch_up import before_swap
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.online_layout import (
    OnlineLayout,
    SideField,
)

SWAP = ["create", "wait", "validate", "swap"]
SIDE_BY_SIDE = ["create", "wait", "validate", "side_by_side", "swap"]
IN_PLACE = OnlineLayout(side_fields=[SideField(field="vec", location="vec", side="indexops-next:vec")])


def order(layout: OnlineLayout, names: list) -> list:
    return [name for name, _run in before_swap(layout, [(name, None) for name in names])]


@pytest.mark.parametrize("layout", [IN_PLACE, OnlineLayout()], ids=["in-place", "rename"])
def test_in_place_right_before_the_swap(layout):
    assert order(layout, SWAP) == ["create", "wait", "validate", "catch_up", "swap"]


def test_a_prefix_change_before_the_validation_its_copies_need():
    assert order(OnlineLayout(copy_keys=True), SWAP) == ["create", "wait", "catch_up", "validate", "swap"]


@pytest.mark.parametrize("layout", [IN_PLACE, OnlineLayout(copy_keys=True)], ids=["in-place", "prefix"])
def test_after_a_side_by_side_stop_in_the_finish_run(layout):
    assert order(layout, SIDE_BY_SIDE) == ["create", "wait", "validate", "side_by_side", "catch_up", "swap"]
