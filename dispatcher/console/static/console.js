// Clarion console: small enhancements over pages that work without JavaScript.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function setDrillMode() {
    var checked = document.querySelector("input[name=mode]:checked");
    if (checked) {
      document.body.classList.toggle("drill-mode", checked.getAttribute("data-drill") === "yes");
    }
  }

  function syncZones() {
    document.querySelectorAll(".zone[data-zone]").forEach(function (g) {
      var box = document.getElementById("zone-" + g.getAttribute("data-zone"));
      g.classList.toggle("chosen", !!(box && box.checked));
    });
  }

  document.addEventListener("click", function (event) {
    var zone = event.target.closest && event.target.closest(".zone[data-zone]");
    if (!zone) { return; }
    var box = document.getElementById("zone-" + zone.getAttribute("data-zone"));
    if (!box) { return; }
    box.checked = !box.checked;
    box.dispatchEvent(new Event("change", { bubbles: true }));
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.name === "mode") { setDrillMode(); }
    if (target.name === "zone") { syncZones(); }
    if (target.getAttribute && target.getAttribute("data-refresh") === "yes" && target.form) {
      // A template brings its own fields: reload the form with them.
      var refresh = document.getElementById("refresh-button");
      if (refresh) { target.form.requestSubmit(refresh); }
    }
  });

  function follow(el) {
    if (!window.EventSource) { return; }
    var source = new EventSource(el.getAttribute("data-events"));
    source.addEventListener("progress", function (event) { el.innerHTML = event.data; });
    ["done", "cancelled"].forEach(function (name) {
      source.addEventListener(name, function () {
        source.close();
        el.setAttribute("data-finished", name);
      });
    });
    source.onerror = function () {
      // Closed by the server when the alert finished, or the network dropped: retry once by reload.
      if (!el.hasAttribute("data-finished")) {
        source.close();
        window.setTimeout(function () { window.location.reload(); }, 5000);
      }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    setDrillMode();
    syncZones();
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
    var progress = document.querySelector("[data-events]");
    var state = document.getElementById("alert-state");
    if (progress && state && state.getAttribute("data-state") === "dispatching") { follow(progress); }
  });
})();
