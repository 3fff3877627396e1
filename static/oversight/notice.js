// The objection form posts to the chosen entry's address (no inline script: CSP is script-src 'self').
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("objection-form");
  var select = form && form.querySelector(".js-objection-entry");
  if (!form || !select) return;
  function follow() { form.action = select.value; }
  select.addEventListener("change", follow);
  follow();
});
