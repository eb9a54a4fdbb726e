"""bench.readme: README.md's generated parts are the text between their two markers,
replaced there and nowhere else."""

from __future__ import annotations

import pytest

from bench import readme

TEXT = ("# Title\nintro\n<!-- a:begin -->\nold a\n<!-- a:end -->\nmiddle\n"
        "<!-- b:begin -->\nold b\n<!-- b:end -->\nend\n")


def test_markers():
    assert readme.markers("datasets") == ("<!-- datasets:begin -->", "<!-- datasets:end -->")


def test_with_parts_replaces_only_the_marked_bodies():
    out = readme.with_parts(TEXT, {"b": "new b\nline 2\n", "c": "no markers: ignored\n"})
    assert out == TEXT.replace("old b\n", "new b\nline 2\n")
    both = readme.with_parts(TEXT, {"a": "A\n", "b": "B\n"})
    assert both == ("# Title\nintro\n<!-- a:begin -->\nA\n<!-- a:end -->\nmiddle\n"
                    "<!-- b:begin -->\nB\n<!-- b:end -->\nend\n")
    assert readme.with_parts(both, {"a": "A\n", "b": "B\n"}) == both  # idempotent


def test_with_parts_names_the_markers_it_did_not_find():
    with pytest.raises(ValueError, match="README lacks the markers <!-- x:begin --> ... "
                                         "<!-- x:end -->, <!-- y:begin --> ... <!-- y:end -->"):
        readme.with_parts(TEXT, {"x": "", "y": ""})
    with pytest.raises(ValueError):  # a begin without its end is no part
        readme.with_parts("<!-- x:begin -->\nbody\n", {"x": "new\n"})


def test_main_rewrites_the_readme_given_and_says_so(tmp_path, monkeypatch, capsys):
    path = tmp_path / "README.md"
    path.write_text(TEXT)
    monkeypatch.setattr(readme, "README", path)
    monkeypatch.setattr("sys.argv", ["x", "--readme"])
    readme.main("demo", "the demo table", lambda: {"a": "fresh\n"})
    assert path.read_text() == TEXT.replace("old a\n", "fresh\n")
    assert capsys.readouterr().out == f"{path}: the demo table regenerated\n"
    monkeypatch.setattr("sys.argv", ["x"])
    with pytest.raises(SystemExit, match=r"usage: python -m bench.demo --readme"):
        readme.main("demo", "the demo table", lambda: pytest.fail("rendered"))
