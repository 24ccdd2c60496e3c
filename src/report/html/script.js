// Builds the findings table from the embedded data, with text nodes only, and keeps it sorted
// and filtered. "#filter=TEXT&sort=KEY" (KEY with a leading "-" descends) pre-sets both.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("lapse-data").textContent);
  var table = document.getElementById("findings-table");
  var body = table.tBodies[0];
  var filter = document.getElementById("filter");
  var shown = document.getElementById("shown-count");
  var headers = table.tHead.rows[0].cells;
  var columns = ["severity", "kind", "status", "subject", "owner", "scope", "why", "age", "action", "id"];
  var rows = data.findings.map(function (finding) {
    var row = document.createElement("tr");
    row.setAttribute("data-finding", finding.id);
    if (finding.status === "waived") { row.className = "waived"; }
    columns.forEach(function (column) {
      var cell = row.insertCell();
      if (column === "severity") {
        var badge = document.createElement("span");
        badge.className = "sev sev-" + finding.severity;
        badge.textContent = finding.severity;
        cell.appendChild(badge);
      } else if (column === "age") {
        cell.className = "n";
        cell.textContent = finding.age === undefined ? "unknown" : days(finding.age);
      } else {
        cell.textContent = finding[column];
      }
    });
    var text = columns.map(function (column) { return finding[column]; })
      .concat([finding.principal, finding.decided_by]).join(" ").toLowerCase();
    return { finding: finding, element: row, text: text };
  });
  var sortKey = "rank";
  var descending = true;

  function days(seconds) {
    if (seconds >= 86400) { return Math.floor(seconds / 86400) + "d"; }
    if (seconds >= 3600) { return Math.floor(seconds / 3600) + "h"; }
    return Math.floor(seconds / 60) + "m";
  }

  function compare(left, right) {
    var a = left.finding[sortKey];
    var b = right.finding[sortKey];
    // Unknown ages sort as the oldest: nobody can say they are young.
    if (sortKey === "age") {
      a = a === undefined ? Infinity : a;
      b = b === undefined ? Infinity : b;
    }
    var order = typeof a === "number" && typeof b === "number" ? (a < b ? -1 : a > b ? 1 : 0)
      : String(a).localeCompare(String(b));
    // Ties keep one order whichever way the column sorts: by id, ascending.
    if (order === 0) { return left.finding.id < right.finding.id ? -1 : 1; }
    return descending ? -order : order;
  }

  function apply() {
    var terms = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    var sorted = rows.slice().sort(compare);
    var fragment = document.createDocumentFragment();
    var count = 0;
    sorted.forEach(function (row) {
      var match = terms.every(function (term) { return row.text.indexOf(term) !== -1; });
      row.element.hidden = !match;
      if (match) { count += 1; }
      fragment.appendChild(row.element);
    });
    body.appendChild(fragment);
    shown.textContent = String(count);
    Array.prototype.forEach.call(headers, function (header) {
      var key = header.getAttribute("data-key");
      if (key === sortKey) {
        header.setAttribute("aria-sort", descending ? "descending" : "ascending");
      } else {
        header.removeAttribute("aria-sort");
      }
    });
  }

  function sortBy(key, descend) {
    sortKey = key === "severity" ? "rank" : key;
    descending = descend;
  }

  Array.prototype.forEach.call(headers, function (header) {
    header.addEventListener("click", function () {
      var key = header.getAttribute("data-key");
      sortBy(key, key === sortKey ? !descending : key === "rank" || key === "age");
      apply();
    });
  });
  filter.addEventListener("input", apply);

  var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  if (fragment.has("filter")) { filter.value = fragment.get("filter"); }
  if (fragment.has("sort")) {
    var key = fragment.get("sort");
    var descend = key.charAt(0) === "-";
    key = key.replace(/^-/, "");
    if (columns.indexOf(key) !== -1 || key === "rank") { sortBy(key, descend); }
  }
  apply();
})();
