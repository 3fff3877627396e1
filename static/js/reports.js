// Draws each report's chart with plotly.js (served by the app from the plotly package); the tables stay.
(function () {
  "use strict";
  if (!window.Plotly) return;
  document.querySelectorAll(".chart[data-figure]").forEach(function (el) {
    var source = document.getElementById(el.getAttribute("data-figure"));
    if (!source) return;
    var figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(el, figure.data, figure.layout, { displaylogo: false, displayModeBar: false, responsive: true });
  });
})();
