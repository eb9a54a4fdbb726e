"""The leaderboard as a static site, browsed from the file system: ``<results>/_site/``.

- ``index.html``: every section of LEADERBOARD.md (the same declared sections, from the same
  tables), each table sortable by any column (click its header), and a filter bar (suite,
  protocol, model, dataset, strategy) that hides the rows and suites of other values; each
  score cell links to the jobs behind it (the seeds at the chosen learning rate).
- ``suites/<suite>.html``: one suite's sections and every one of its jobs.
- ``jobs/<suite>/<job_id>.html``: one record: configuration, status and reason, accuracies,
  curves (loss, learning rate, validation accuracy) as inline SVG drawn here, plasticity per
  layer and component, the parameters it trained, provenance and its log
  (``<results>/<suite>/<job_id>.log``) when there is one.

No network: one small script and one style sheet (``bench/page/site.js``, ``bench/page/site.css``,
package data) are copied beside the pages, and the figures are the leaderboard's SVGs,
linked relatively. The same records give the same bytes: nothing time-dependent is written,
every listing is sorted, numbers are printed with fixed formats. Pages of an earlier build
that this one did not write are removed (``index.html``, ``suites/*.html``,
``jobs/*/*.html``); nothing else in the folder is touched.

``bench.page.leaderboard`` renders the sections' content (Markdown lines and tables) and calls
``write_site``; this module knows nothing of sections. No torch import.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bench.core.components import COMPONENTS
from bench.core.files import atomic_write_bytes
from bench.core.rootpath import inside
from bench.page import job_facts
from bench.page.figures import color_of
from bench.page.markdown import BADGES, FILTERS, Figure, Fold, Heading, Item, Table
from bench.page.markup import ESCAPED

ASSETS = ("site.js", "site.css")
LOG_CHARS = 200_000  # a job page shows at most the last this many characters of its log
WRAP_CHARS = 40  # table cells longer than this wrap; shorter ones stay on one line
# The columns that say a table's outcome: kept in view while a wide table scrolls.
KEY_HEADERS = ("verdict", "against the best")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_JOB_ID = re.compile(r"[0-9a-f]{16}")
_HELD = 0xE000  # an escaped character stands in the private use area while markup is read
_HELD_CHAR = re.compile("[\ue000-\ue07f]")


def job_href(suite: str, job_id: str) -> str:
    """A job page, relative to the site's root."""
    return f"jobs/{suite}/{job_id}.html"


def suite_href(suite: str) -> str:
    return f"suites/{suite}.html"


def lr_key(lr: object) -> float | None:
    """A learning rate as a lookup key (a strategy without one, ``lp``: None)."""
    return None if lr is None or (isinstance(lr, float) and math.isnan(lr)) else float(lr)


@dataclass
class Links:
    """What the pages link to: job pages by (suite, protocol, model, dataset, strategy, lr),
    the suites each job id has a page in, and, while a page is rendered, ``root`` (the path
    from that page to the site's root) and the filter values its rows have."""

    jobs: Mapping[tuple, list[tuple[int, str]]]
    suites_of: Mapping[str, list[str]]
    root: str = ""
    seen: dict[str, set[str]] = field(default_factory=dict)
    toc: list[tuple[str, str]] = field(default_factory=list)  # (anchor, heading) of the page
    tables: int = 0  # the tables of the page so far (each scroll box is named by its number)


# ---------------------------------------------------------------- content to HTML


def inline(text: str, links: Links, suite: str | None = None) -> str:
    """Markdown's inline code and bold, escaped; a job id in code links to its page (in
    ``suite``, or the one suite that has a job of that id)."""
    # a Markdown escape (bench.page.markup) is its character as text, kept out of the markup below
    text = ESCAPED.sub(lambda m: chr(_HELD + ord(m.group(1))), text)
    out = html.escape(text, quote=False)

    def code(m: re.Match) -> str:
        word = m.group(1)
        where = [suite] if suite in links.suites_of.get(word, ()) else links.suites_of.get(
            word, [])
        if _JOB_ID.fullmatch(word) and len(where) == 1:
            return f'<a href="{links.root}{job_href(where[0], word)}"><code>{word}</code></a>'
        return f"<code>{word}</code>"

    out = _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(code, out))
    return _HELD_CHAR.sub(lambda m: html.escape(chr(ord(m.group()) - _HELD)), out)


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _classes(*names: str) -> str:
    names = [n for n in names if n]
    return f' class="{" ".join(names)}"' if names else ""


def table_html(t, links: Links) -> str:
    """A section's table (``Table``): sortable headers, rows carrying their
    filter values, the score cells linked to the jobs behind them; a verdict column
    (``KEY_HEADERS``) stays in view while the rest scrolls."""
    key = {i for i, h in enumerate(t.headers) if h in KEY_HEADERS}
    head = "".join(
        f'<th data-sort scope="col"'
        f'{_classes("num" if i in t.right else "", "key-col" if i in key else "")}>'
        f"{inline(h, links)}</th>" for i, h in enumerate(t.headers))
    body = []
    for i, row in enumerate(t.rows):
        keys = t.keys[i] if t.keys else {}
        for k, v in keys.items():
            links.seen.setdefault(k, set()).add(v)
        attrs = "".join(f' data-{k}="{_attr(v)}"' for k, v in keys.items())
        cells = []
        for j, v in enumerate(row):
            cls = _classes("num" if j in t.right else "wrap" if len(str(v)) > WRAP_CHARS
                           else "", "key-col" if j in key else "")
            text = inline(str(v), links, keys.get("suite"))
            if t.jobs is not None and j == t.jobs_col:
                runs = links.jobs.get(t.jobs[i], [])
                seeds = " ".join(f'<a href="{links.root}{job_href(t.jobs[i][0], jid)}" '
                                 f'title="job {jid}">s{seed}</a>' for seed, jid in runs)
                text = (f'{text}<span class="jobs">jobs: {seeds}</span>' if seeds else text)
                cls += f' data-v="{_attr(v)}"'
            cells.append(f"<td{cls}>{text}</td>")
        body.append(f"<tr{attrs}>{''.join(cells)}</tr>")
    n = len(t.rows)
    links.tables += 1
    return (f'<div class="table-wrap" tabindex="0" role="region" aria-label="table '
            f'{links.tables}, {n} rows"><table data-rows="{n}"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{chr(10).join(body)}\n</tbody></table>'
            f'<div class="shown">{n} of {n} rows shown</div></div>')


def _keys_attrs(keys: Iterable[tuple[str, str]], links: Links) -> str:
    """``data-<filter>`` attributes of a heading or list item (the filter bar hides it with
    the rows of other values), its values offered by the bar."""
    for k, v in keys:
        links.seen.setdefault(k, set()).add(v)
    return "".join(f' data-{k}="{_attr(v)}"' for k, v in keys)


def _heading(h: Heading, links: Links) -> str:
    """A heading; the page's second-level ones get anchors and enter its contents."""
    level, text = h.level, h.text
    if level != 2:
        return f"<h{level}{_keys_attrs(h.keys, links)}>{inline(text, links)}</h{level}>"
    base = anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    taken = {a for a, _ in links.toc}
    while anchor in taken:
        anchor = f"{base}-{len(taken)}"
        taken.add(anchor)
    links.toc.append((anchor, text))
    return f'<h2 id="{anchor}"{_keys_attrs(h.keys, links)}>{inline(text, links)}</h2>'


def badge_html(word: str) -> str:
    """An outcome badge (``bench.page.markdown.BADGES``): its mark and word, in its style."""
    cls = re.sub(r"[^a-z]+", "-", word.lower()).strip("-")
    return (f'<span class="badge badge-{cls}"><span aria-hidden="true">{BADGES[word]}</span> '
            f"{html.escape(word)}</span>")


def _item(part: Item, links: Links, suite: str | None) -> str:
    text = inline(part.text, links, suite)
    if part.badge:
        text = f"{badge_html(part.badge)} {text}"
    return f"<li{_keys_attrs(part.keys, links)}>{text}"


def _figure(f: Figure) -> str:
    return f'<figure><img src="{_attr(f.src)}" alt="{_attr(f.alt)}" loading="lazy"></figure>'


def _fold(part: Fold, links: Links, open_before: bool) -> str:
    """Where a folded part starts (``<details>``, closed) or ends."""
    end = "</div></details>" if open_before else ""
    if part.end:
        return end
    return (f'{end}<details class="fold"><summary>{inline(part.summary, links)}</summary>'
            '<div class="fold-body">')


def _block(part: object, links: Links) -> str:
    """A heading, figure or table ("" for a comment)."""
    if isinstance(part, Heading):
        return _heading(part, links)
    if isinstance(part, Figure):
        return _figure(part)
    return table_html(part, links) if isinstance(part, Table) else ""


def content_html(content: Iterable, links: Links, suite: str | None = None) -> str:
    """A section's content (``bench.page.markdown``'s blocks) as HTML: headings, paragraphs,
    lists, figures, comments dropped, tables through ``table_html``."""
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            out.append(f"<p>{' '.join(para)}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"{i}</li>" for i in items) + "</ul>")
            items.clear()

    folded = False
    for part in content:
        if isinstance(part, Item):
            if para:
                flush()
            items.append(_item(part, links, suite))
            continue
        if not isinstance(part, str):
            flush()
            block = _block(part, links) if not isinstance(part, Fold) else _fold(
                part, links, folded)  # a folded part closes the one before it
            folded = (not part.end) if isinstance(part, Fold) else folded
            out += [block] if block else []
            continue
        for line in part.split("\n"):
            if not line.strip():
                flush()
            else:
                (items.__setitem__(-1, items[-1] + " " + inline(line, links, suite)) if items
                 else para.append(inline(line, links, suite)))
    flush()
    if folded:
        out.append("</div></details>")
    return "\n".join(out)


# ---------------------------------------------------------------- pages


def document(title: str, body: str, root: str, suites: Iterable[str],
             filters: Mapping[str, Iterable[str]] | None = None,
             toc: Iterable[tuple[str, str]] = ()) -> str:
    """A whole page: the style, the script, a bar linking the index and the suites, the
    filter selects (values sorted), the contents (``toc``: anchor, heading), then ``body``."""
    nav = "".join(f'<a href="{root}{suite_href(s)}">{html.escape(s)}</a>' for s in suites)
    bar = ""
    if filters:
        selects = "".join(
            f'<label>{k} <select data-filter="{k}"><option value="">all</option>'
            + "".join(f'<option value="{_attr(v)}">{html.escape(v)}</option>'
                      for v in sorted(vals)) + "</select></label>"
            for k, vals in filters.items() if vals)
        bar = (f'<div class="filters"><strong>Filter</strong>{selects}'
               '<button id="reset-filters" type="button">show all</button></div>')
    contents = "".join(f'<a href="#{a}">{inline(t, Links({}, {}))}</a>' for a, t in toc)
    if contents:
        bar += f'<nav class="toc"><strong>Contents</strong>{contents}</nav>'

    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title>"
        f"<link rel=\"stylesheet\" href=\"{root}site.css\">"
        f"<script src=\"{root}site.js\"></script></head>\n<body>"
        f"<header class=\"top\"><a href=\"{root}index.html\"><strong>Leaderboard</strong></a>"
        f"{nav}</header>\n<main>{bar}\n{body}\n</main></body></html>\n")


def sections_html(parts: Iterable[tuple[str, str | None, list]], links: Links) -> str:
    """Rendered sections (name, suite or None, content), each in its own ``<section>``
    (a suite's carry ``data-suite``: the suite filter hides them)."""
    out = []
    for name, suite, content in parts:
        body = content_html(content, links, suite)
        if not body:
            continue
        if suite is None:
            out.append(f'<section id="{name}">\n{body}\n</section>')
        else:
            links.seen.setdefault("suite", set()).add(suite)
            out.append(f'<section id="{_attr(suite)}-{name}" data-suite="{_attr(suite)}">'
                       f"\n{body}\n</section>")
    return "\n".join(out)


def filtered_page(title: str, parts: Iterable[tuple[str, str | None, list]], links: Links,
                  suites: Iterable[str]) -> str:
    """A page of sections with the filter bar over the values its rows have."""
    links.seen, links.toc, links.tables = {}, [], 0
    body = sections_html(parts, links)
    if "<h1" not in body:  # a suite's page: its title, so that its headings start at one
        body = f"<h1>{html.escape(title)}</h1>\n{body}"
    return document(title, body, links.root, suites,
                    {k: links.seen.get(k, set()) for k in FILTERS}, links.toc)


# ---------------------------------------------------------------- writing


def write_site(site: Path, pages: Mapping[str, str], job_pages: Iterable[tuple[str, str]]
               ) -> int:
    """``pages`` (path relative to ``site`` -> HTML) and the job pages, the assets beside
    them; pages of an earlier build that were not written now are removed (other files are
    left alone). Unchanged files are not rewritten. Returns the number of pages."""
    site.mkdir(parents=True, exist_ok=True)
    written = set()
    for folder in {(site / rel).parent for rel, _ in pages.items()} | {site / "jobs"}:
        inside(site, folder)  # a folder of the site that is a link leaving it: refused
    for name in ASSETS:
        atomic_write_bytes(site / name, resources.files(__package__).joinpath(name).read_bytes())
        written.add(name)
    checked = set()
    for rel, text in itertools.chain(pages.items(), job_pages):
        if (site / rel).parent not in checked:
            checked.add(inside(site, (site / rel).parent))
        atomic_write_bytes(site / rel, text.encode("utf-8"), durable=False)
        written.add(rel)
    # Only what a build writes is removed: a page of another build, never a user's file.
    ours = [*site.glob("*.html"), *(site / "suites").glob("*.html"),
            *(site / "jobs").glob("*/*.html")]
    for old in sorted(p for p in ours if p.is_file()):
        if old.relative_to(site).as_posix() not in written:
            inside(site, old).unlink()
    for d in sorted((p for p in (site / "jobs").glob("*") if p.is_dir()), reverse=True):
        if not any(inside(site, d).iterdir()):
            d.rmdir()
    return len(written) - len(ASSETS)


def screenshots(site: Path, out: Path, job: str | None = None, width: int = 1400,
                height: int = 1800, chromium: str = "chromium", narrow: int = 400
                ) -> list[Path]:
    """PNG screenshots by headless Chromium, from the files: the index and one job page
    (``job``: its path under the site, default the first) ``width`` wide (``index.png``,
    ``job.png``), and the index as a phone shows it, ``narrow`` wide (``index-narrow.png``)."""
    site, out = Path(site).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    job = job or next((p.relative_to(site).as_posix() for p in sorted(
        (site / "jobs").rglob("*.html"))), None)
    shots = [("index.png", site / "index.html", width)]
    if job:
        shots.append(("job.png", site / job, width))
    shots.append(("index-narrow.png", site / "index.html", narrow))
    paths = []
    for name, page, w in shots:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, *browser_flags(profile), f"--screenshot={out / name}",
                            f"--window-size={w},{height}", page.as_uri()],
                           check=True, capture_output=True, timeout=120)
        paths.append(out / name)
    return paths


def browser_flags(profile: str) -> list[str]:
    """Headless Chromium that needs nothing from the network or the machine (as root too)."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}"]


# ---------------------------------------------------------------- job pages


def _num(x: object, spec: str, scale: float = 1.0) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
        return "—"
    return format(x if scale == 1 else scale * x, spec)


def _facts(pairs: Iterable[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(
        f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _simple_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    head = "".join(f"<th data-sort{' class=num' if i in right else ''}>{html.escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(
        f"<td{' class=num' if i in right else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows)
    return (f'<div class="table-wrap" tabindex="0"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")


LOG_SPAN = 10  # with ``log=True``, a chart whose values span more than this gets a log y axis


def _finite(y: object) -> bool:
    return isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y)


def chart_svg(title: str, series: Mapping[str, list[tuple[float, float]]], xlabel: str,
              yspec: str = ".3g", width: int = 360, height: int = 200, log: bool = False
              ) -> str:
    """A line chart as inline SVG, a polyline per series (colour by component or strategy
    name), axes labelled with their ranges; coordinates rounded: the same points give the
    same bytes. ``log``: a log y axis where every value is positive and they span more than
    ``LOG_SPAN`` times (a small series is then not drawn flat on the floor by a large one),
    with a label at every power of ten and "log scale" in the title."""
    pts = [(x, y) for s in series.values() for x, y in s if _finite(y)]
    if not pts:
        return ""
    ys = [y for _, y in pts]
    logy = log and min(ys) > 0 and max(ys) > LOG_SPAN * min(ys)
    f = math.log10 if logy else (lambda y: y)
    left, right, top, bottom = 52, 10, 22, 30
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(f(y) for y in ys), max(f(y) for y in ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + abs(y0) * 0.1 + 1e-9)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    lines, legend = [], []
    for i, (name, s) in enumerate(series.items()):
        colour = color_of(name) if len(series) > 1 else "#1f77b4"
        good = [(x, f(y)) for x, y in s if _finite(y)]
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                     f'points="{" ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in good)}"/>')
        if len(series) > 1:
            legend.append(f'<text x="{left + 8 + 58 * i}" y="14" fill="{colour}">'
                          f"{html.escape(name)}</text>")
    b = height - bottom
    if logy:  # a label at each power of ten inside the range, and at both ends
        marks = [y0, *(float(k) for k in range(math.ceil(y0), math.floor(y1) + 1)
                       if 12 < py(y0) - py(k) and py(k) - py(y1) > 12), y1]
        ylabels = "".join(
            f'<line x1="{left}" y1="{py(k):.1f}" x2="{width - right}" y2="{py(k):.1f}" '
            f'stroke="#eee"/><text x="{left - 4}" y="{py(k) + 3:.1f}" text-anchor="end">'
            f"{format(10 ** k, yspec)}</text>" for k in marks)
    else:
        ylabels = (f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">'
                   f"{format(y1, yspec)}</text>"
                   f'<text x="{left - 4}" y="{b}" text-anchor="end">{format(y0, yspec)}</text>')
    axes = (f'<line x1="{left}" y1="{b}" x2="{width - right}" y2="{b}" stroke="#999"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#999"/>{ylabels}'
            f'<text x="{left}" y="{b + 14}">{x0:g}</text>'
            f'<text x="{width - right}" y="{b + 14}" text-anchor="end">{x1:g}</text>'
            f'<text x="{(left + width - right) / 2:.0f}" y="{b + 26}" text-anchor="middle">'
            f"{html.escape(xlabel)}</text>")
    title = f"{title} (log scale)" if logy else title
    if logy and legend:  # the title is not drawn: say it on the axis
        axes += '<text x="2" y="14" font-style="italic">log y</text>'
    head = "" if legend else (f'<text x="{left}" y="14" font-weight="bold">'
                              f"{html.escape(title)}</text>")
    return (f'<svg class="chart" role="img" aria-label="{_attr(title)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" font-size="10" '
            f'font-family="sans-serif" xmlns="http://www.w3.org/2000/svg"'
            f'{" data-log=1" if logy else ""}>'
            f"<title>{html.escape(title)}</title>{axes}{head}{''.join(legend)}"
            f"{''.join(lines)}</svg>")


def _curves_html(record: Mapping) -> str:
    points = job_facts.curves(record)
    charts = [
        chart_svg("training loss", {"loss": points["loss"]}, "step"),
        chart_svg("learning rate", {"lr": points["lr"]}, "step"),
        chart_svg("validation accuracy (%)",
                  {"val": [(s, 100 * v) for s, v in points["val_acc"]]}, "step", ".4g"),
    ]
    charts = [c for c in charts if c]
    if not charts:
        return "<p>No curves recorded.</p>"
    return f'<div class="charts">{"".join(charts)}</div>'


def _plasticity_html(which: str, p: Mapping | None) -> str:
    """A plasticity measurement (``which``: "the paper's definition", "variant X")."""
    if not p:
        return ""
    comps, layers = job_facts.plasticity_grid(p)
    by_mean = sorted(comps, key=lambda c: -p["components"][c]["mean"])
    rows = [[html.escape(COMPONENTS[c].paper if c in COMPONENTS else c), html.escape(c),
             _num(p["components"][c]["mean"], ".4g"), _num(p["components"][c]["ci95"], ".2g"),
             str(by_mean.index(c) + 1)] for c in comps]
    lrows = [[str(li), *(_num(layers[li][c]["mean"], ".4g") if c in layers[li] else ""
                         for c in comps)] for li in layers]
    chart = chart_svg(f"plasticity per block, {which}", {
        c: [(li, layers[li][c]["mean"]) for li in layers if c in layers[li]]
        for c in comps}, "block", log=True)
    return (f"<h3>Plasticity, {html.escape(which)} ({_num(p.get('pairs'), ',')} pairs, "
            f"reference {html.escape(str(p.get('reference')))})</h3>"
            + _simple_table(["component", "module", "mean over blocks", "± 95%", "rank"], rows,
                            {2, 3, 4})
            + _simple_table(["block", *comps], lrows, set(range(1, len(comps) + 1)))
            + f'<div class="charts">{chart}</div>')


def _trained_html(metrics: Mapping) -> str:
    names = metrics.get("trained_params")
    if names is None:
        count = _num(metrics.get("trainable_params"), ",")
        return (f"<p>{count} trainable parameters; their names are not recorded (the record "
                "predates <code>metrics.trained_params</code>).</p>")
    items = "\n".join(html.escape(n) for n in names)
    return (f"<details><summary>{len(names):,} parameter tensors</summary>"
            f"<pre tabindex=0>{items}</pre></details>")


def _log_html(log: Path | None) -> str:
    if log is None:
        return ("<p>Log not shown: it is a link that leaves the results folder (set aside, "
                "never read).</p>")
    if not log.is_file():
        return (f"<p>No log beside the record (<code>{html.escape(log.name)}</code> in its "
                "suite's folder).</p>")
    data = log.read_bytes()
    text = data.decode("utf-8", errors="replace")
    lines = text.count("\n")
    size = (f"<p><code>{html.escape(log.name)}</code>: {len(data):,} bytes, "
            f"{lines:,} line{'' if lines == 1 else 's'}.</p>")
    if len(text) > LOG_CHARS:
        size += f"<p>The last {LOG_CHARS:,} of {len(text):,} characters.</p>"
        text = text[-LOG_CHARS:]
    return f"{size}<pre tabindex=0>{html.escape(text)}</pre>"


def job_page(record: Mapping, labels: Mapping[str, str], log: Path | None, root: str,
             suites: Iterable[str], stale: bool = False, extra: str = "") -> str:
    """One record's page: what it is (``labels``: model, dataset, strategy as the tables
    show them), how it ended, its numbers, curves, plasticity, trained parameters, provenance,
    configuration and log; ``extra``: HTML after its numbers (its runs and their
    verification, ``bench.page.agreement``)."""
    cfg, m = record["config"], record.get("metrics") or {}
    err = record.get("error") or {}
    status = record["status"]
    strategy = cfg["strategy"]
    title = (f"{labels['model']} · {labels['dataset']} · {labels['strategy']} · lr "
             f"{_num(cfg.get('lr'), 'g')} · seed {cfg.get('seed')}")
    what = [("suite", f'<a href="{root}{suite_href(record["suite"])}">'
                      f"{html.escape(record['suite'])}</a>"
                      + (" (stale: not in the suite's current plan; never scored)"
                         if stale else "")),
            ("protocol", html.escape(labels["protocol"])),
            ("status", f'<span class="status-{_attr(status)}">{html.escape(status)}</span>'),
            *([("reason", html.escape(str(err.get("reason") or "")))] if err else []),
            ("model", f"{html.escape(labels['model'])} (<code>{html.escape(cfg['model']['name'])}"
                      "</code>)"),
            ("dataset", f"{html.escape(labels['dataset'])} (<code>"
                        f"{html.escape(cfg['dataset']['key'])}</code>)"),
            ("strategy", f"{html.escape(labels['strategy'])} (<code>"
                         f"{html.escape(strategy['name'])}</code>)"),
            *((f"strategy {k}", "<br>".join(f"<code>{html.escape(str(x))}</code>" for x in v)
               if isinstance(v, list) else html.escape(str(v)))
              for k, v in sorted((strategy.get("params") or {}).items())),
            ("learning rate", _num(cfg.get("lr"), "g")), ("seed", str(cfg.get("seed")))]
    numbers = [("test accuracy (%)", _num(m.get("test_acc"), ".2f", 100)),
               ("best validation accuracy (%)", _num(m.get("best_val_acc"), ".2f", 100)),
               ("best step", _num(m.get("best_step"), "d")),
               ("steps done", _num(m.get("steps_done"), ",")),
               ("trainable / total parameters", f"{_num(m.get('trainable_params'), ',')} / "
                                                f"{_num(m.get('total_params'), ',')}"),
               ("wall / training seconds", f"{_num(m.get('wall_seconds'), '.1f')} / "
                                           f"{_num(m.get('train_seconds'), '.1f')}"),
               ("images per second", _num(m.get("images_per_second"), ",.0f")),
               ("peak memory (MB)", _num(m.get("peak_memory_mb"), ",.0f"))]
    variants = sorted((record.get("plasticity_variants") or {}).items())
    plast = _plasticity_html("the paper's definition", record.get("plasticity")) + "".join(
        _plasticity_html(f"variant {k}", v) for k, v in variants)
    trace = err.get("traceback")
    body = (f"<h1>{html.escape(title)}</h1><p>Job <code>{record['job_id']}</code></p>"
            + _facts(what)
            + (f"<details><summary>traceback</summary><pre tabindex=0>{html.escape(trace)}</pre>"
               "</details>" if trace else "")
            + "<h2>Accuracies and costs</h2>" + _facts(numbers) + extra
            + "<h2>Curves</h2>" + _curves_html(record)
            + "<h2>Plasticity</h2>" + (plast or "<p>No plasticity measured.</p>")
            + "<h2>Parameters trained</h2>" + _trained_html(m)
            + "<h2>Provenance</h2>" + _facts(
                (k, html.escape(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list))
                                else str(v)))
                for k, v in sorted((record.get("provenance") or {}).items()))
            + "<h2>Configuration</h2><pre tabindex=0>"
            + html.escape(json.dumps(cfg, sort_keys=True, indent=2)) + "</pre>"
            + f"<h2>Log</h2>{_log_html(log)}")
    return document(f"{title} ({record['job_id']})", body, root, suites)
