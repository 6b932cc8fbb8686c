/* Dashboard: refresh the summary and each camera card's state from /dashboard/states (the
   server words every state, so this page and the API say the same). */
"use strict";
(function () {
  var STATUS_MS = 5000, THUMB_MS = 30000;

  function swap(fragment) {
    var summary = fragment.querySelector("[data-summary]"), here = document.querySelector("[data-summary]");
    if (summary && here && summary.innerHTML !== here.innerHTML) here.replaceWith(summary);
    fragment.querySelectorAll("[data-card-state-for]").forEach(function (item) {
      var name = item.getAttribute("data-card-state-for");
      var card = document.querySelector('[data-camera="' + CSS.escape(name) + '"]');
      var fresh = item.querySelector("[data-card-state]");
      if (!card || !fresh) return;
      var old = card.querySelector("[data-card-state]");
      card.setAttribute("data-level", fresh.getAttribute("data-level"));
      // Unchanged text is left alone, so a screen reader does not repeat an alert.
      if (old.outerHTML !== fresh.outerHTML) old.replaceWith(fresh);
    });
  }
  function poll() {
    if (document.hidden) return;
    fetch("/dashboard/states", { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html == null) return;
        var doc = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html");
        PC.localizeTimes(doc);
        swap(doc);
      }).catch(function () { /* the next poll tries again */ });
  }
  function refreshThumbs() {
    if (document.hidden) return;
    document.querySelectorAll("[data-thumb]").forEach(function (img) {
      // A failing camera without a picture yet: no request (each would be a 404).
      if (img.classList.contains("missing") && img.closest("[data-level=bad]")) return;
      var next = new Image(), base = img.src.split("?")[0];
      next.onload = function () { img.src = next.src; img.classList.remove("missing"); };
      next.src = base + "?_=" + Date.now();
    });
  }
  document.querySelectorAll("[data-thumb]").forEach(function (img) {
    img.addEventListener("error", function () { img.classList.add("missing"); });
    // It may have failed before this script ran (no error event is coming then).
    if (img.complete && !img.naturalWidth) img.classList.add("missing");
  });
  setInterval(poll, STATUS_MS);
  setInterval(refreshThumbs, THUMB_MS);
})();
