// Reviewer queue: lease countdown, select-all, and keys (j/k move, x select, a approve, o open).
(function () {
  "use strict";
  var table = document.getElementById("claimed-items");
  if (!table) return;
  var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-item]"));
  var current = -1;

  document.querySelectorAll(".lease[data-seconds]").forEach(function (el) {
    var left = parseInt(el.getAttribute("data-seconds"), 10);
    function show() {
      var m = Math.floor(left / 60), s = left % 60;
      el.textContent = m + ":" + (s < 10 ? "0" : "") + s;
      el.classList.toggle("short", left < 300);
    }
    show();
    setInterval(function () { if (left > 0) { left -= 1; show(); } }, 1000);
  });

  var all = document.getElementById("select-all");
  if (all) all.addEventListener("change", function () {
    rows.forEach(function (r) { r.querySelector("input[name=items]").checked = all.checked; mark(r); });
  });
  var counter = document.getElementById("selected-count");
  function count() {
    if (!counter) return;
    var n = rows.filter(function (r) { return r.querySelector("input[name=items]").checked; }).length;
    counter.textContent = counter.getAttribute("data-template").replace("{n}", n);
  }
  function mark(row) { row.classList.toggle("selected", row.querySelector("input[name=items]").checked); count(); }
  rows.forEach(function (r) { r.querySelector("input[name=items]").addEventListener("change", function () { mark(r); }); mark(r); });
  count();
  // A refused decision: the errors are at the top of the page; bring them into view.
  var errors = document.getElementById("decide-errors");
  if (errors) { errors.focus(); errors.scrollIntoView({ block: "start" }); }

  function focusRow(i) {
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows[current].focus();
  }
  document.addEventListener("keydown", function (e) {
    var tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" && e.target.type !== "checkbox" || tag === "textarea" || tag === "select") return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var row = rows[current];
    if (e.key === "j") { focusRow(current + 1); e.preventDefault(); }
    else if (e.key === "k") { focusRow(current - 1); e.preventDefault(); }
    else if (e.key === "x" && row) { var box = row.querySelector("input[name=items]"); box.checked = !box.checked; mark(row); e.preventDefault(); }
    else if (e.key === "a" && row) { row.querySelector("button[name=one]").click(); e.preventDefault(); }
    else if (e.key === "o" && row) { window.location = row.querySelector("a").href; e.preventDefault(); }
  });
})();
