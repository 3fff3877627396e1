// The statement page's print button (no inline script: CSP script-src 'self').
(function () {
  "use strict";
  document.querySelectorAll(".js-print").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
