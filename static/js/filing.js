// Filing page: checks the ID number as it is typed, fills in a registered person, filters the
// disease list and keeps the eligibility checklist current. The page works without it.
(function () {
  "use strict";
  var form = document.getElementById("filing-form");
  if (!form) return;
  var url = form.getAttribute("data-check-url");
  var texts = document.getElementById("i18n-filing").dataset;
  var idInput = form.querySelector("[name=id_number]");
  var status = document.getElementById("id-status");
  var checklist = document.getElementById("checklist");
  var disease = form.querySelector("[name=disease]");
  var region = form.querySelector("[name=insured_region]");
  var treating = form.querySelector("[name=treating_institution]");
  var lastNumber = null;
  var timer = null;

  function text(el, value) { el.textContent = value; return el; }
  function interpolate(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key] == null ? "" : values[key]; });
  }
  function setIfEmptyOrForced(name, value, force) {
    var field = form.querySelector("[name=" + name + "]");
    if (field && value != null && (force || !field.value)) field.value = value;
  }

  function renderChecks(checks) {
    if (!checks.length) return;
    var list = document.createElement("ul");
    list.className = "checklist";
    checks.forEach(function (c) {
      var li = document.createElement("li");
      var advisory = c.code === "documents_missing";
      li.className = c.passed ? "pass" : (advisory ? "warn" : "fail");
      li.setAttribute("data-code", c.code);
      var mark = text(document.createElement("span"), c.passed ? "✓" : (advisory ? "!" : "✗"));
      mark.className = "mark";
      mark.setAttribute("aria-hidden", "true");
      li.appendChild(mark);
      li.appendChild(text(document.createElement("strong"), c.label));
      if (c.message) {
        li.appendChild(document.createTextNode(": "));
        var reason = text(document.createElement("span"), c.message);
        reason.className = "reason";
        li.appendChild(reason);
      }
      list.appendChild(li);
    });
    checklist.replaceChildren(list);
  }

  function check() {
    var params = new URLSearchParams();
    params.set("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    params.set("id_number", idInput.value);
    if (disease.value) params.set("disease", disease.value);
    if (region && region.value) params.set("insured_region", region.value);
    if (treating && treating.value) params.set("treating_institution", treating.value);
    form.querySelectorAll("select[name$=doc_type]").forEach(function (select) {
      var file = form.querySelector("[name=" + select.name.replace("doc_type", "file") + "]");
      if (file && file.files && file.files.length && select.value) params.append("doc_type", select.value);
    });
    status.className = "id-status";
    text(status, texts.checking);
    // POST: ID numbers never go into URLs (and so never into access logs).
    fetch(url, {
      method: "POST",
      body: params,
      headers: { "Accept": "application/json" },
      credentials: "same-origin"
    })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var id = data.id_number;
        if (!idInput.value.trim()) { text(status, ""); }
        else if (!id.valid) { status.className = "id-status error"; text(status, id.message); }
        else if (data.person) {
          status.className = "id-status ok";
          text(status, interpolate(texts.known, { name: data.person.name, sex: data.person.sex, birth: data.person.birth_date }));
          var changed = id.normalised !== lastNumber;
          setIfEmptyOrForced("name", data.person.name, changed);
          setIfEmptyOrForced("insured_region", String(data.person.insured_region), changed);
          setIfEmptyOrForced("insurance_type", data.person.insurance_type, changed);
          setIfEmptyOrForced("insurance_number", data.person.insurance_number, changed);
          setIfEmptyOrForced("phone", data.person.phone, changed);
        } else { status.className = "id-status new"; text(status, texts["new"]); }
        if (id.valid) lastNumber = id.normalised;
        renderChecks(data.checks || []);
      })
      .catch(function () { text(status, ""); });
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(check, 250); }
  idInput.addEventListener("input", schedule);
  form.addEventListener("change", schedule);

  // Enter (what ID-card readers send after the number) looks the person up at once and moves on to the
  // next field; in any other one-line field it moves on too. The form is submitted only by its button, so a
  // half-filled form is never sent and chosen files stay chosen.
  var fields = Array.prototype.slice.call(form.querySelectorAll("input:not([type=hidden]):not([type=file]), select, textarea"));
  function next(el) {
    var visible = fields.filter(function (f) { return f.offsetParent !== null && !f.disabled; });
    var i = visible.indexOf(el);
    if (i >= 0 && i + 1 < visible.length) visible[i + 1].focus();
  }
  form.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || e.isComposing) return;
    var el = e.target;
    var tag = (el.tagName || "").toLowerCase();
    if (tag === "textarea" || tag === "button" || (tag === "input" && (el.type === "submit" || el.type === "file"))) return;
    if (el.id === "disease-search") return;  // handled below
    e.preventDefault();
    if (el === idInput) { clearTimeout(timer); check(); }
    next(el);
  });

  // Disease search: narrows the list by code, name or alias as the clerk types. The typed text is
  // folded like enrollment.selectors.disease_name_key (full-width → half-width, no whitespace, upper
  // case, one final 病/症 dropped: 高血压病 finds 高血压) and looked for in each option's data-search,
  // the server's code and folded names and aliases of the disease.
  function searchKey(value) {
    var key = (value.normalize ? value.normalize("NFKC") : value).replace(/\s+/g, "").toUpperCase();
    if (key.length > 1 && /[病症]$/.test(key)) key = key.slice(0, -1);
    return key;
  }
  var search = document.getElementById("disease-search");
  if (search) {
    var all = Array.prototype.slice.call(disease.options).map(function (o) {
      var terms = o.getAttribute("data-search") || searchKey(o.textContent);
      return { value: o.value, label: o.textContent, selected: o.selected, search: terms };
    });
    search.addEventListener("input", function () {
      var q = searchKey(search.value);
      var current = disease.value;
      disease.replaceChildren();
      all.forEach(function (o) {
        if (!o.value || !q || o.search.indexOf(q) !== -1) {
          var opt = new Option(o.label, o.value, false, o.value === current);
          disease.add(opt);
        }
      });
      if (disease.options.length === 2 && !current) { disease.selectedIndex = 1; schedule(); }
    });
    search.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); disease.focus(); }
    });
  }
  if (idInput.value) check();
})();
