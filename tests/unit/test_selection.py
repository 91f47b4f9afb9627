"""Picking declared things by name (connectors, projections)."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.selection import select_named

DECLARED = {"a": 1, "b": 2, "c": 3}


def test_no_names_is_every_declared_thing_and_names_keep_their_order() -> None:
    assert select_named(DECLARED, [], error=ConfigError, unknown="no {}") == [1, 2, 3]
    assert select_named(DECLARED, ["c", "a"], error=ConfigError, unknown="no {}") == [3, 1]


def test_unknown_names_raise_the_given_error_with_the_declared_ones_as_hint() -> None:
    with pytest.raises(ConfigError) as err:
        select_named(DECLARED, ["a", "x", "y"], error=ConfigError, unknown="no thing named {}")
    assert err.value.message == "no thing named x, y"
    assert err.value.hint == "declared: a, b, c"
    with pytest.raises(ConfigError) as err:
        select_named({}, ["x"], error=ConfigError, unknown="no {}")
    assert err.value.hint == "declared: none"
