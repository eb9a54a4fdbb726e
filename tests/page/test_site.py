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
                 "Plasticity, the paper&#x27;s definition (", "names are not recorded",
                 "<h2>Configuration</h2>"):
        assert what in page, what
    assert page.count("<svg") == 4  # three curves and plasticity per block
    first = _first_job(results)
    assert "step 1 &lt;loss&gt; 2.0" in pages[first]  # the log, escaped, with its size
    assert f"<code>{first}.log</code>: 18 bytes, 1 line.</p>" in pages[first]
    others = [p for k, p in pages.items() if k != first]
    assert all("No log beside the record" in p for p in others)


def test_a_plasticity_chart_spanning_decades_is_drawn_on_a_log_axis():
    """LN near 2.0 beside MHA near 0.06 and FC2 near 0.19 (a committed job's values): on a
    linear axis MHA and FC2 lie on the floor; on the log axis every component has its own
    height, and the chart says so."""
    from bench.page.site import chart_svg

    series = {"ln1": [(0, 2.0), (1, 2.03)], "mha": [(0, 0.046), (1, 0.073)],
              "fc2": [(0, 0.199), (1, 0.185)]}

    def heights(svg: str) -> dict[str, float]:
        polys = re.findall(r'points="([^"]*)"', svg)
        return {name: sum(float(p.split(",")[1]) for p in pts.split()) / len(pts.split())
                for name, pts in zip(series, polys, strict=True)}

    linear, log = chart_svg("p", series, "block"), chart_svg("p", series, "block", log=True)
    assert "data-log" not in linear and "data-log=1" in log and "log y" in log
    lin, lg = heights(linear), heights(log)
    assert abs(lin["mha"] - lin["fc2"]) < 15  # flattened together near the floor
    assert lg["ln1"] < lg["fc2"] - 40 and lg["fc2"] < lg["mha"] - 40  # each apart (pixels)
    assert chart_svg("p", {"a": [(0, 1.0), (1, 2.0)]}, "x", log=True).count("data-log") == 0


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
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())["value"]
        except urllib.error.HTTPError as e:  # say what the driver said
            raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None

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
    assert [p.name for p in shots] == ["index.png", "job.png", "index-narrow.png"]
    for p in shots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


# ---------------------------------------------------------------- sorting, filters, layout, a11y


def _column(browser: WebDriver, table: str, header: str) -> tuple[int, list[str]]:
    """(index, shown cells) of the column of ``table`` headed ``header``."""
    headers = browser.script("return Array.from(document.querySelectorAll(arguments[0] + ' th'))"
                             ".map(h => h.textContent.trim())", table)
    col = headers.index(header)
    return col, [r[col] for r in browser.script(SHOWN_ROWS, table)]


def _sorted_by(browser: WebDriver, table: str, header: str) -> tuple[list[str], list[str]]:
    """The column's cells after one click on its header (ascending), then a second."""
    col, _ = _column(browser, table, header)
    browser.click(f"{table} th:nth-child({col + 1})")
    up = _column(browser, table, header)[1]
    browser.click(f"{table} th:nth-child({col + 1})")
    return up, _column(browser, table, header)[1]


JOBS = "#s-runs table"  # a suite page's table of every job


def test_a_text_column_sorts_alphabetically(browser: WebDriver, built: Path):
    browser.open(built / "suites" / "s.html")
    up, down = _sorted_by(browser, JOBS, "strategy")
    # not by the digits inside the names (fc1, fc1, ln1, ln1, fc2 ... was the old order)
    assert up == sorted(up, key=str.lower) and up[0] == "fc1" and up[-1] == "mha"
    assert down == sorted(up, key=str.lower, reverse=True)


def test_an_identifier_column_sorts_as_text(browser: WebDriver, built: Path):
    browser.open(built / "suites" / "s.html")
    up, down = _sorted_by(browser, JOBS, "job")
    assert up == sorted(up) and down == sorted(up, reverse=True) and len(set(up)) == len(up)


def test_a_number_column_sorts_by_value_with_blanks_last(browser: WebDriver, tmp_path: Path):
    from tests.support import make_record

    failed = [make_record("mha", 0.1, seed, status="failed", dataset="noise", test=None)
              for seed in (0, 1)]  # no test accuracy: blanks
    results = written([*small_suite()[:12], *failed], tmp_path / "results")
    build_leaderboard(results, tmp_path / "L.md", site_dir=results / "_site")
    browser.open(results / "_site" / "suites" / "s.html")
    up, down = _sorted_by(browser, JOBS, "lr")
    assert [float(x) for x in up] == sorted(float(x) for x in up) and up[-1] == "0.1"
    assert [float(x) for x in down] == sorted((float(x) for x in up), reverse=True)
    up, down = _sorted_by(browser, JOBS, "test acc (%)")  # the diverged job has none
    values = [float(x) for x in up if x]
    assert up[-2:] == down[-2:] == ["", ""] and values == sorted(values)
    assert [float(x) for x in down if x] == sorted(values, reverse=True)


def test_a_mean_interval_column_sorts_by_its_mean(browser: WebDriver, built: Path):
    browser.open(built / "index.html")
    up, _ = _sorted_by(browser, "#glance table", "test acc (%) ± 95% (datasets)")
    means = [_leading(x) for x in up]
    assert means == sorted(means) and len(means) == 7


def _shown(browser: WebDriver, css: str) -> list[str]:
    return browser.script("return Array.from(document.querySelectorAll(arguments[0]))"
                          ".filter(e => e.offsetParent !== null)"
                          ".map(e => e.textContent.trim())", css)


def test_the_filters_reach_the_verdicts_and_at_a_glance(browser: WebDriver, built: Path):
    browser.open(built / "index.html")
    verdicts = _shown(browser, "#verdicts li")
    glance_rows = browser.script(SHOWN_ROWS, "#glance table")
    assert len(glance_rows) == 7 and any("mha vs full" in v for v in verdicts)
    browser.click('select[data-filter="strategy"]')
    browser.click('select[data-filter="strategy"] option[value="fc1"]')
    assert [r[1] for r in browser.script(SHOWN_ROWS, "#glance table")] == ["fc1"]
    shown = _shown(browser, "#verdicts li")
    assert [v for v in shown if " vs " in v] == [v for v in verdicts if "fc1 vs full" in v]
    assert [v for v in shown if " vs " not in v] == [v for v in verdicts if " vs " not in v]
    assert _shown(browser, "#glance h3")  # the model's heading stays: it has fc1's row
    browser.click("#reset-filters")
    assert _shown(browser, "#verdicts li") == verdicts


def _resize(browser: WebDriver, width: int, height: int) -> None:
    browser.cmd("POST", "/window/rect", {"width": width, "height": height})
    inner = browser.script("return window.innerWidth")
    if inner != width:  # the window's frame: make the page itself that wide
        browser.cmd("POST", "/window/rect", {"width": 2 * width - inner, "height": height})


LAYOUT = """
const vw = document.documentElement.clientWidth;
const out = {page: document.documentElement.scrollWidth, vw: vw, loose: [], hidden: []};
document.querySelectorAll('table').forEach(t => {
  const wrap = t.closest('.table-wrap');
  const box = (wrap || t).getBoundingClientRect();
  if (box.right > vw + 1) out.loose.push(t.closest('section').id);
  if (wrap && innerWidth >= 1000) t.querySelectorAll('th.key-col').forEach(th => {
    const r = th.getBoundingClientRect();
    if (r.right > box.right + 1 || r.left < box.left - 1) out.hidden.push(t.closest('section').id);
  });
});
const g = document.querySelector('#glance');
out.glance = g ? g.getBoundingClientRect().top + scrollY : null;
return out;
"""


def _layout_pages(built: Path) -> list[Path]:
    """The small suite's pages, and the committed site's index and suite pages where there
    are some (their tables are the widest)."""
    site = ROOT / "results" / "_site"
    committed = [site / "index.html", *sorted((site / "suites").glob("*.html"))]
    return [built / "index.html", built / "suites" / "s.html",
            *(p for p in committed if p.is_file())]


def test_the_page_fits_a_wide_and_a_narrow_window(browser: WebDriver, built: Path,
                                                  tmp_path: Path):
    """At 1,400 x 900 and 400 x 900: no table wider than the window outside its own scroll
    box, the verdict columns in view (wide window), "At a glance" within the first screen;
    screenshots of each (kept in BENCH_SCREENSHOTS when set, to be looked at)."""
    import base64

    shots = Path(os.environ.get("BENCH_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        for width in (1400, 400):
            _resize(browser, width, 900)
            for i, page in enumerate(_layout_pages(built)):
                browser.open(page)
                got = browser.script(LAYOUT)
                assert got["page"] <= got["vw"] + 1, (width, page, got)
                assert got["loose"] == [] and got["hidden"] == [], (width, page, got)
                if width == 1400 and page.name == "index.html":
                    assert got["glance"] is not None and got["glance"] < 900, (page, got)
                png = base64.b64decode(browser.cmd("GET", "/screenshot"))
                (shots / f"{width}-{i}-{page.stem}.png").write_bytes(png)
                assert png[:4] == b"\x89PNG"
    finally:
        _resize(browser, 1400, 1000)


def _axe() -> Path | None:
    """axe-core's script: BENCH_AXE, else node_modules/axe-core/ under the repository."""
    for p in (os.environ.get("BENCH_AXE"), ROOT / "node_modules" / "axe-core" / "axe.min.js"):
        if p and Path(p).is_file():
            return Path(p)
    return None


AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(
  r => done(r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
         .map(v => v.id + ': ' + v.help + ' (' + v.nodes.slice(0, 3).map(
           n => n.target.join(' ')).join('; ') + ')')),
  e => done(['axe failed: ' + e]));
"""


def test_no_serious_accessibility_violation(browser: WebDriver, built: Path):
    """axe-core (npm's axe-core; .ci/run installs it and sets BENCH_AXE) over the index, a
    suite page and a job page: headings in order, table headers, text alternatives of the
    figures, contrast ... no serious or critical violation."""
    axe = _axe()
    if axe is None:
        msg = "no axe-core (npm install axe-core; or set BENCH_AXE to its axe.min.js)"
        if os.environ.get("BENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    source = axe.read_text()
    pages = []
    for site, suite in ((built, "s"), (ROOT / "results" / "_site", "digits")):  # + committed
        jobs = sorted((site / "jobs" / suite).glob("*.html"))
        if jobs:
            pages += [site / "index.html", site / "suites" / f"{suite}.html", jobs[0]]
    for page in pages:
        browser.open(page)
        browser.script(source + "\nreturn true;")
        browser.cmd("POST", "/timeouts", {"script": 120_000})
        found = browser.cmd("POST", "/execute/async", {"script": AXE_RUN, "args": []})
        assert found == [], (page.name, found)
