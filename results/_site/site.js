// The leaderboard site's one script (bench/site.js, copied into <results>/_site/): click a
// table header to sort by that column (again to reverse); the page's selects hide the rows
// (and suite sections, verdict lines, "At a glance" lines) of other suites, protocols, models,
// datasets and strategies. No network.
(function () {
  "use strict";

  // A cell's value as a number, or NaN when it is not one: a number ("1,200", "-0.05",
  // "+3.20", "< 0.001", "1e-3", "≈ 9 seeds") or a "mean ± ci (n)" / "x [lo, hi]" cell, by its
  // leading value.
  // Text that merely holds digits ("fc1", "digits_c/gaussian_noise/5", a job id) is text.
  var NUMBER = new RegExp("^[<>\u2248~]?\\s*[-+\u2212]?(\\d[\\d,]*\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?%?" +
                          "(\\s*[\u00b1[(\u2020*].*|\\s+[a-z].*)?$", "i");
  function number(text) {
    var t = text.replace(/\s+/g, " ").trim();
    if (!NUMBER.test(t)) return NaN;
    var m = t.replace(/,/g, "").replace(/\u2212/g, "-")
      .match(/[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/i);
    return m ? parseFloat(m[0]) : NaN;
  }

  function cellText(row, col) {
    var cell = row.cells[col];
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    return (v === null ? cell.textContent : v).trim();
  }

  // A column's kind: "number" when every non-blank cell is a number (sorted by value), "id"
  // when every one is an identifier shown as code (a job id, a suite: character by
  // character), else "text" (alphabetically, case-insensitive, a run of digits inside as
  // a number: "block 2" before "block 10"). Blanks last either way; ties keep their order.
  var COLLATOR = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
  function compare(a, b, kind) {
    if ((a.text === "") !== (b.text === "")) return a.text === "" ? 1 : -1;
    if (kind === "number") return a.n - b.n;
    if (kind === "id") return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
    return COLLATOR.compare(a.text, b.text);
  }

  function sortBy(th) {
    var head = th.parentNode, body = th.closest("table").tBodies[0];
    var col = Array.prototype.indexOf.call(head.children, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(head.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      var text = cellText(row, col);
      // an identifier (a job id, a suite: shown as code) is text, whatever its characters
      var code = row.cells[col] && row.cells[col].querySelector("code") !== null;
      return { row: row, text: text, n: code ? NaN : number(text), code: code, i: i };
    });
    var filled = rows.filter(function (r) { return r.text !== ""; });
    var kind = filled.every(function (r) { return !isNaN(r.n); }) ? "number"
      : filled.every(function (r) { return r.code; }) ? "id" : "text";
    rows.sort(function (a, b) {
      var c = compare(a, b, kind);
      if (c !== 0 && !ascending && (a.text !== "") === (b.text !== "")) c = -c;
      return c !== 0 ? c : a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }

  function applyFilters() {
    var want = {};
    document.querySelectorAll("select[data-filter]").forEach(function (s) {
      if (s.value !== "") want[s.getAttribute("data-filter")] = s.value;
    });
    function hidden(el) {
      return Object.keys(want).some(function (k) {
        var v = el.getAttribute("data-" + k);
        return v !== null && v !== want[k];
      });
    }
    // sections, table rows, verdict lines and headings that say what they are about
    var about = Array.prototype.map.call(
      document.querySelectorAll("select[data-filter]"),
      function (s) { return "[data-" + s.getAttribute("data-filter") + "]"; }).join(",");
    if (about) document.querySelectorAll(about).forEach(function (el) {
      if (el.tagName !== "SELECT") el.hidden = hidden(el);
    });
    document.querySelectorAll("table[data-rows]").forEach(function (t) {
      var shown = Array.prototype.filter.call(t.tBodies[0].rows, function (r) {
        return !r.hidden;
      }).length;
      var note = t.parentNode.querySelector(".shown");
      if (note) note.textContent = shown + " of " + t.getAttribute("data-rows") + " rows shown";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () { sortBy(th); });
    });
    document.querySelectorAll("select[data-filter]").forEach(function (s) {
      s.addEventListener("change", applyFilters);
    });
    var reset = document.getElementById("reset-filters");
    if (reset) reset.addEventListener("click", function () {
      document.querySelectorAll("select[data-filter]").forEach(function (s) { s.value = ""; });
      applyFilters();
    });
    applyFilters();
  });
})();
