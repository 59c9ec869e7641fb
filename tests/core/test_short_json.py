"""codec.short_json: a client's value spelled as JSON, cut to a length, without recursion (issue 31: a value
nested ~1,000 deep made json.dumps raise RecursionError, a 500)."""

from __future__ import annotations

import json

import pytest

from service.core.codec import short_json

VALUES = [1, -2.5, "abc", None, True, [], {}, [[]], {"a": [1, 2, {"b": None}]}, "x" * 100, [1] * 100, {"k": "é"}]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_spelled_as_json_dumps_spells_it(value):
    full = json.dumps(value, ensure_ascii=False)
    assert short_json(value, 40) == (full if len(full) <= 40 else full[:37] + "...")


def test_a_value_nested_past_the_recursion_limit_is_spelled():
    value: list = [1]
    for _ in range(100_000):
        value = [value]
    assert short_json(value, 40) == "[" * 37 + "..."


def test_a_long_value_is_cut():
    assert short_json(list(range(1_000_000)), 20) == "[0, 1, 2, 3, 4, 5..."
