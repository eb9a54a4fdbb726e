"""Tests of bench.suites.read: reading a suite's YAML safely, and plain-data checks."""

from __future__ import annotations

import datetime

import pytest

from bench.suites.read import SuiteError, join_key, plain_data, read_yaml_checked, type_name


def test_duplicate_keys_are_problems_with_both_lines(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: a\nrecipe:\n  steps: 1\n  steps: 2\nname: b\n")
    doc, problems = read_yaml_checked(path)
    assert doc == {"name": "b", "recipe": {"steps": 2}}  # what plain YAML makes of it
    assert sorted(problems) == [
        f"{path}: line 4: key 'steps' is given twice in one mapping (first on line 3); keep one",
        f"{path}: line 5: key 'name' is given twice in one mapping (first on line 1); keep one"]


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    (b"name: \xff\n", "not UTF-8 text"),
    (b"a: [1, 2\n", "YAML error: line 2"),
    (b"a: !!python/object:os.system {}\n", "tag '!!python/object:os.system' is refused"),
])
def test_unreadable_files_raise_suite_error(tmp_path, content, expected):
    path = tmp_path / "s.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SuiteError, match=expected) as e:
        read_yaml_checked(path, kind="profile", example="slurm/local.yaml")
    assert str(e.value).startswith(str(path))
    with pytest.raises(SuiteError, match="is a directory; give a profile file"):
        read_yaml_checked(tmp_path, kind="profile")


def test_plain_data_drops_and_reports_values_a_suite_never_holds():
    raw = {"a": datetime.date(2024, 1, 2), "b": [1, float("nan")], 3: "x",
           "c": {"d": "ok", "e": None}}
    problems, bad, cleaned = plain_data(raw, "s.yaml")
    assert cleaned == {"a": None, "b": [1, None], "c": {"d": "ok", "e": None}}
    assert set(bad) == {"a", "b[1]", "3"}
    assert any(p.startswith("s.yaml: b[1]: must be a finite number") for p in problems)
    assert any(p.startswith("s.yaml: 3: key 3 is an integer") for p in problems)
    assert len(problems) == 3


def test_join_key_and_type_name():
    assert join_key("", "recipe") == "recipe" and join_key("recipe", "steps") == "recipe.steps"
    assert [type_name(x) for x in ({}, [], "", True, 1, 1.0, None)] == [
        "a mapping", "a list", "a string", "a boolean", "an integer", "a number", "null"]
