"""bench.core.registry: an ordered name -> entry mapping whose misses say what exists and which
name is closest."""

from __future__ import annotations

import pytest

from bench.core.registry import Registry, UnknownName, did_you_mean, unknown_name_message


def colours() -> Registry[int]:
    reg: Registry[int] = Registry("colour")
    for i, name in enumerate(("red", "green", "blue")):
        reg.register(name, i)
    return reg


def test_entries_keep_their_order():
    reg = colours()
    assert reg.names() == ("red", "green", "blue") and list(reg) == list(reg.names())
    assert dict(reg.items()) == {"red": 0, "green": 1, "blue": 2}
    assert reg["green"] == 1 and "blue" in reg and "pink" not in reg and len(reg) == 3
    assert reg.kind == "colour"


def test_an_unknown_name_lists_what_exists_and_the_closest():
    with pytest.raises(UnknownName) as e:
        colours()["gren"]
    assert str(e.value) == "unknown colour 'gren' (did you mean 'green'?); valid: red, green, blue"
    assert isinstance(e.value, KeyError)  # callers may catch it as a missing key
    with pytest.raises(KeyError, match=r"^unknown colour 'zzz'; valid: red, green, blue$"):
        colours()["zzz"]  # nothing close: no suggestion


def test_a_name_registered_twice_is_an_error():
    reg = colours()
    with pytest.raises(ValueError, match="colour 'red' registered twice"):
        reg.register("red", 9)
    assert reg["red"] == 0


@pytest.mark.parametrize("name,expect", [
    ("fc1x", " (did you mean 'fc1'?)"), ("FC1", ""), ("mhaa", " (did you mean 'mha'?)"),
    ("linaer", " (did you mean 'linear'?)"), ("xyz", ""), (3, "")])
def test_did_you_mean(name, expect):
    assert did_you_mean(name, ("fc1", "fc2", "mha", "linear")) == expect


def test_unknown_name_message_takes_any_name():
    assert unknown_name_message("seed", 3, ["1", "2"]) == "unknown seed '3'; valid: 1, 2"
