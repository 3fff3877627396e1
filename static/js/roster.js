// Roster import page: while the dry run or the commit runs, poll the API for the progress and
// update the bar; when the phase ends, reload so that the counts, the report and the commit button show.
// Without JavaScript the page's "Refresh" link does the same.
(function () {
  "use strict";
  var box = document.getElementById("roster-status");
  if (!box || box.getAttribute("data-running") !== "1" || !window.fetch) return;
  var url = box.getAttribute("data-api");
  var bar = document.getElementById("roster-progress");
  var done = document.getElementById("roster-done");
  var total = document.getElementById("roster-total");
  var running = ["pending", "validating", "commit_requested", "committing"];
  var delay = 1000;

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (data) {
        if (bar) {
          bar.value = data.progress;
          bar.textContent = data.progress + "%";
        }
        if (done) done.textContent = data.lines_done;
        if (total) total.textContent = data.lines_total;
        if (running.indexOf(data.state) === -1) {
          window.location.reload();
          return;
        }
        delay = Math.min(delay * 1.5, 5000);
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        window.setTimeout(poll, 10000);
      });
  }
  window.setTimeout(poll, delay);
})();
