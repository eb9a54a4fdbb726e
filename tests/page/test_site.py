"""Tests of the leaderboard's HTML site (bench.page.site): what it holds, that it needs no network
and regenerates byte for byte, and, in a real headless Chromium driven through chromedriver's
W3C WebDriver API, that sorting and filtering work on the page opened from disk.

Without chromium and chromedriver the browser tests skip, unless BENCH_REQUIRE_BROWSER=1
(set by .ci/run) makes that a failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench.core.strategies import BASELINE, REFERENCE
from bench.page.leaderboard import build_leaderboard
from bench.page.site import browser_flags
from tests.page.test_leaderboard import ROOT, small_suite, written

# The accuracies small_suite gives: test = acc + shift + 0.01 * seed (seeds 0 and 1), and the
# validation accuracy grows with the learning rate, so lr 0.01 is chosen everywhere.
ACC = {BASELINE: 0.70, REFERENCE: 0.90, "mha": 0.85, "ln1": 0.72, "ln2": 0.74, "fc1": 0.80,
       "fc2": 0.78}
SHIFT = {"digits": 0.0, "noise": -0.1}


def expected_test_mean(dataset: str, strategy: str) -> float:
    """Percent, the mean over the two seeds at the chosen lr (protocol.md's score)."""
    return round(100 * (ACC[strategy] + SHIFT[dataset] + 0.005), 2)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The site of small_suite's records (and a log beside the first), built once: read
    only (a test that changes it works on a copy: ``site``)."""
    tmp = tmp_path_factory.mktemp("site")
    results = written(small_suite(), tmp / "results")
    (results / "s" / f"{_first_job(results)}.log").write_text("step 1 <loss> 2.0\n")
    build_leaderboard(results, tmp / "LEADERBOARD.md", site_dir=results / "_site")
    return results / "_site"


@pytest.fixture
def site(built: Path, tmp_path: Path) -> Path:
    """A copy of the built site and its records, the leaderboard beside them."""
    shutil.copytree(built.parent, tmp_path / "results")
    shutil.copy(built.parent.parent / "LEADERBOARD.md", tmp_path / "LEADERBOARD.md")
    return tmp_path / "results" / "_site"


def _first_job(results: Path) -> str:
    return sorted(p.stem for p in (results / "s").glob("*.json"))[0]


class _Links(HTMLParser):
    """Every href and src of a page, and the number of tables."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        self.tables += tag == "table"
        self.refs += [v for k, v in attrs if k in ("href", "src") and v]


def _parsed(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text())
    return p


# ---------------------------------------------------------------- the files


def test_site_has_index_suite_and_a_page_per_record(built: Path):
    site, results = built, built.parent
    ids = sorted(p.stem for p in (results / "s").glob("*.json"))
    assert sorted(p.stem for p in (site / "jobs" / "s").glob("*.html")) == ids
    assert (site / "suites" / "s.html").is_file() and (site / "site.js").is_file()
    # every Markdown table of the page is a table of the index
    md_tables = len(re.findall(r"^\|[:-]", (results.parent / "LEADERBOARD.md").read_text(),
                               flags=re.MULTILINE))
    assert _parsed(site / "index.html").tables == md_tables
    assert "site: [results/_site/index.html](results/_site/index.html)" in (
        results.parent / "LEADERBOARD.md").read_text()  # the page points to the site
    # every link resolves to a file of the site or a figure; nothing on the network
    for page in [site / "index.html", site / "suites" / "s.html",
                 *sorted((site / "jobs" / "s").glob("*.html"))]:
        for ref in _parsed(page).refs:
            assert not re.match(r"[a-z]+:", ref), (page, ref)
            if ref.startswith("#"):  # the contents: an anchor of the page itself
                assert f' id="{ref[1:]}"' in page.read_text(), (page, ref)
            else:
                assert (page.parent / ref).resolve().is_file(), (page, ref)
    svgs = [r for r in _parsed(site / "index.html").refs if r.endswith(".svg")]
    assert len(svgs) == 4 and all("_figures/" in r for r in svgs)


def test_score_cells_link_to_the_runs_behind_them(built: Path):
    site = built
    index = (site / "index.html").read_text()
    row = re.search(r'<tr data-suite="s" data-protocol="clean" data-model="m" '
                    r'data-dataset="noise" data-strategy="mha">(.*?)</tr>', index).group(1)
    hrefs = re.findall(r'<span class="jobs">jobs: (.*?)</span>', row)[0]
    jobs = re.findall(r'href="(jobs/s/[0-9a-f]{16}\.html)"[^>]*>s(\d)</a>', hrefs)
    assert [seed for _, seed in jobs] == ["0", "1"]
    for href, seed in jobs:
        job = json.loads((site.parent / "s" / (Path(href).stem + ".json")).read_text())
        cfg = job["config"]
        assert (cfg["dataset"]["key"], cfg["strategy"]["key"], cfg["lr"], cfg["seed"]) == (
            "noise", "mha", 1e-2, int(seed))
        assert (site / href).is_file()


def test_job_page_shows_status_reason_curves_plasticity_and_log(built: Path):
    site = built
    results = site.parent
    pages = {p.stem: p.read_text() for p in (site / "jobs" / "s").glob("*.html")}
    failed = [json.loads(p.read_text()) for p in (results / "s").glob("*.json")]
    failed = [r for r in failed if r["status"] != "done"][0]
    page = pages[failed["job_id"]]
    assert "diverged" in page and "loss is NaN at step 3 | exploded" in page
    done = [r for r in map(json.loads, (p.read_text() for p in (results / "s").glob("*.json")))
            if r["plasticity"]][0]
    page = pages[done["job_id"]]
    for what in ("training loss", "learning rate", "validation accuracy",
                 "Plasticity, the paper&#x27;s definition (", "Not recorded",
                 "<h2>Configuration</h2>"):
        assert what in page, what
    assert page.count("<svg") == 4  # three curves and plasticity per block
    assert "step 1 &lt;loss&gt; 2.0" in pages[_first_job(results)]  # the log, escaped


def test_trained_parameters_are_listed_when_recorded(tmp_path: Path):
    recs = small_suite()[:1]
    recs[0]["metrics"]["trained_params"] = ["blocks.0.attn.qkv.weight", "head.bias"]
    results = written(recs, tmp_path / "results")
    build_leaderboard(results, tmp_path / "L.md", site_dir=tmp_path / "site")
    page = (tmp_path / "site" / "jobs" / "s" / f"{recs[0]['job_id']}.html").read_text()
    assert "2 parameter tensors" in page and "blocks.0.attn.qkv.weight\nhead.bias" in page


def test_same_records_give_the_same_site_and_old_pages_go(site: Path, tmp_path: Path):
    """Rebuilt in another interpreter (another hash seed: set orders differ), the site has
    the same files and bytes; a page it did not write is removed."""
    results = site.parent
    before = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    stray = site / "jobs" / "gone" / "0123456789abcdef.html"
    stray.parent.mkdir(parents=True)
    stray.write_text("old")
    mine = site / "notes.txt"  # not a page a build writes: left alone
    mine.write_text("mine")
    for f in before:
        if f.suffix == ".html":
            (site / f).write_text("changed")
    code = ("from bench.page.leaderboard import build_leaderboard as b; "
            f"b({str(results)!r}, {str(tmp_path / 'L.md')!r}, site_dir={str(site)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, cwd=ROOT,
                   env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert not stray.exists() and not stray.parent.exists()
    assert mine.read_text() == "mine"
    mine.unlink()
    after = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    assert sorted(after) == sorted(before)
    for f, data in before.items():
        assert after[f] == data, f


# ---------------------------------------------------------------- a real browser


class WebDriver:
    """The few W3C WebDriver calls the tests need, over chromedriver's HTTP API."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, chromium: str, chromedriver: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([chromedriver, f"--port={port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.profile = tempfile.mkdtemp(prefix="bench-chromium-")
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium, "args": [*browser_flags(self.profile), "--window-size=1400,1000"]}}
        self.session = self._call("POST", "/session",
                                  {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())["value"]

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, path: Path) -> None:
        self.cmd("POST", "/url", {"url": path.resolve().as_uri()})

    def find(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[self.ELEMENT]

    def click(self, css: str) -> None:
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def script(self, js: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": js, "args": list(args)})

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        msg = ("no chromium and chromedriver on PATH (Debian: apt-get install chromium "
               "chromium-driver)")
        if os.environ.get("BENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    wd = WebDriver(chromium, driver)
    yield wd
    wd.close()


# The shown rows of a table: per row, its cells' text (a linked score cell: its value).
SHOWN_ROWS = """
const rows = document.querySelectorAll(arguments[0] + ' tbody tr');
return Array.from(rows).filter(r => r.offsetParent !== null).map(
    r => Array.from(r.cells).map(c => (c.getAttribute('data-v') ?? c.textContent).trim()));
"""


def _leading(text: str) -> float:
    return float(text.split()[0])


def test_sorting_a_column_in_the_browser(browser: WebDriver, built: Path):
    site = built
    browser.open(site / "index.html")
    table = "#s-scores table"
    headers = browser.script(f"return Array.from(document.querySelectorAll('{table} th'))"
                             ".map(h => h.textContent)")
    col = headers.index("test acc (%) ± 95% CI (n)")
    before = browser.script(SHOWN_ROWS, table)
    assert len(before) == 14
    browser.click(f"{table} th:nth-child({col + 1})")
    up = browser.script(SHOWN_ROWS, table)
    browser.click(f"{table} th:nth-child({col + 1})")
    down = browser.script(SHOWN_ROWS, table)
    strategy_of = {f"{k} (baseline)": k for k in (BASELINE,)} | {f"{REFERENCE} (reference)":
                                                                 REFERENCE}
    for rows in (up, down):
        assert sorted(map(tuple, rows)) == sorted(map(tuple, before))  # the same rows
        for r in rows:  # each row keeps its own numbers (oracle: the records' accuracies)
            strategy = strategy_of.get(r[2], r[2])
            assert _leading(r[col]) == pytest.approx(expected_test_mean(r[1], strategy))
    means = [_leading(r[col]) for r in up]
    assert means == sorted(means) and means != [_leading(r[col]) for r in before]
    assert [_leading(r[col]) for r in down] == sorted(means, reverse=True)


def test_filtering_a_strategy_in_the_browser(browser: WebDriver, built: Path):
    site = built
    browser.open(site / "index.html")
    browser.click('select[data-filter="strategy"]')
    browser.click('select[data-filter="strategy"] option[value="mha"]')
    scores = browser.script(SHOWN_ROWS, "#s-scores table")
    assert sorted((r[1], r[2]) for r in scores) == [("digits", "mha"), ("noise", "mha")]
    assert [_leading(r[6]) for r in scores] == [expected_test_mean(d, "mha")
                                                for d in ("digits", "noise")]
    paired = browser.script(SHOWN_ROWS, "#s-paired table")
    assert [r[1] for r in paired] == ["mha"]
    claims = browser.script(SHOWN_ROWS, "#held table")  # rows of no strategy stay
    assert len(claims) == 3  # the three claims (a, b, c)
    browser.click('select[data-filter="dataset"]')
    browser.click('select[data-filter="dataset"] option[value="noise"]')
    assert [r[1] for r in browser.script(SHOWN_ROWS, "#s-scores table")] == ["noise"]
    browser.click("#reset-filters")
    assert len(browser.script(SHOWN_ROWS, "#s-scores table")) == 14


def test_screenshots_of_the_index_and_a_job_page(browser: WebDriver, built: Path,
                                                 tmp_path: Path):
    from bench.page.site import screenshots

    shots = screenshots(built, tmp_path / "shots", width=800, height=600,
                        chromium=shutil.which("chromium") or "chromium-browser")
    assert [p.name for p in shots] == ["index.png", "job.png"]
    for p in shots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
