// The leaderboard site's one script (bench/site.js, copied into <results>/_site/): click a
// table header to sort by that column (again to reverse); the page's selects hide the rows
// (and suite sections) of other suites, protocols, models, datasets and strategies. No network.
(function () {
  "use strict";

  // The leading number of a cell ("90.50 ± 6.35 (3)" -> 90.5, "≈ 1,200 seeds" -> 1200).
  function number(text) {
    var m = text.replace(/,/g, "").replace(/\u2212/g, "-")
      .match(/[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/i);
    return m ? parseFloat(m[0]) : NaN;
  }

  function cellText(row, col) {
    var cell = row.cells[col];
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    return (v === null ? cell.textContent : v).trim();
  }

  // Blanks last, then numbers (numerically) before words (alphabetically); ties keep order.
  function compare(a, b) {
    if ((a.text === "") !== (b.text === "")) return a.text === "" ? 1 : -1;
    var na = !isNaN(a.n), nb = !isNaN(b.n);
    if (na && nb && a.n !== b.n) return a.n - b.n;
    if (na !== nb) return na ? -1 : 1;
    return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
  }

  function sortBy(th) {
    var head = th.parentNode, body = th.closest("table").tBodies[0];
    var col = Array.prototype.indexOf.call(head.children, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(head.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      var text = cellText(row, col);
      return { row: row, text: text, n: number(text), i: i };
    });
    rows.sort(function (a, b) {
      var c = compare(a, b);
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
    document.querySelectorAll("section[data-suite], tbody tr").forEach(function (el) {
      el.hidden = hidden(el);
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
