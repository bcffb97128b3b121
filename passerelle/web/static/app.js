// Concept autocomplete for the feasibility builder (progressive enhancement: without
// JavaScript, concept ids are typed). Keyboard: arrows move, Enter picks, Escape closes.
(function () {
  "use strict";
  function setup(input) {
    var target = document.getElementById(input.dataset.target);
    var list = document.getElementById(input.getAttribute("aria-controls"));
    var field = input.closest(".concept-field");
    var domainSelect = document.getElementById(field.dataset.domainField);
    var timer = null, items = [], active = -1;
    function close() { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; input.removeAttribute("aria-activedescendant"); }
    function pick(i) {
      var c = items[i]; if (!c) return;
      var ids = target.value.split(/[^0-9]+/).filter(Boolean);
      if (ids.indexOf(String(c.concept_id)) < 0) ids.push(String(c.concept_id));
      target.value = ids.join(", ");
      input.value = ""; close(); target.focus();
    }
    function mark() {
      Array.prototype.forEach.call(list.children, function (li, i) { li.setAttribute("aria-selected", i === active ? "true" : "false"); });
      if (active >= 0) input.setAttribute("aria-activedescendant", list.children[active].id);
    }
    function show(data) {
      items = data; list.innerHTML = "";
      data.forEach(function (c, i) {
        var li = document.createElement("li");
        li.id = input.id + "-opt-" + i; li.setAttribute("role", "option");
        li.textContent = c.name + " — " + c.vocabulary + " " + c.code + " (" + c.concept_id + ")";
        li.addEventListener("mousedown", function (e) { e.preventDefault(); pick(i); });
        list.appendChild(li);
      });
      list.hidden = data.length === 0; input.setAttribute("aria-expanded", data.length ? "true" : "false"); active = -1;
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (q.length < 2) { close(); return; }
      timer = setTimeout(function () {
        var domain = domainSelect ? domainSelect.value : "";
        fetch("/ui/concepts?q=" + encodeURIComponent(q) + "&domain=" + encodeURIComponent(domain), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : []; }).then(show).catch(function () { show([]); });
      }, 200);
    });
    input.addEventListener("keydown", function (e) {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { active = Math.min(items.length - 1, active + 1); mark(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = Math.max(0, active - 1); mark(); e.preventDefault(); }
      else if (e.key === "Enter") { if (active >= 0) { pick(active); e.preventDefault(); } }
      else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("input.concept-search"), setup);
  });
})();
