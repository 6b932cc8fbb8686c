/* Setup wizard: compare the box's clock with this browser's; offer to set it (they differ) or
   to trust it (they agree but nothing synchronises it); fill the forms with this browser's time. */
"use strict";
(function () {
  var box = document.querySelector("[data-clock]");
  if (!box) return;
  var boxUs = Number(box.getAttribute("data-box-utc-us"));
  var trusted = box.getAttribute("data-trusted") === "1";
  var tolerance = Number(box.getAttribute("data-tolerance-s")) || 5;
  var loadedAt = Date.now();
  var offsetMs = boxUs ? boxUs / 1000 - loadedAt : null;   // box minus browser
  var form = document.querySelector("[data-set-clock]");
  var trustForm = document.querySelector("[data-trust-clock]");
  var out = box.querySelector("[data-clock-diff]");
  var boxText = box.querySelector("[data-box-time]");
  var browserText = box.querySelector("[data-browser-time]");
  function render() {
    var now = Date.now();
    browserText.textContent = PC.fmtDateTime(now);
    if (offsetMs == null) { boxText.textContent = "unknown (the recorder is not running)"; return; }
    boxText.textContent = PC.fmtDateTime(now + offsetMs);
    var diff = offsetMs / 1000;
    out.textContent = Math.abs(diff) < 1 ? "The clocks agree."
      : Math.abs(diff) <= tolerance ? "The clocks agree (to within " + Math.ceil(Math.abs(diff)) + " s)."
      : "The box is " + PC.fmtDuration(Math.abs(diff)) + (diff > 0 ? " ahead of" : " behind") + " this browser.";
    var offer = !trusted && Math.abs(diff) > tolerance;
    box.setAttribute("data-offer", offer ? "1" : "0");
    box.setAttribute("data-offer-trust", !trusted && !offer ? "1" : "0");
    if (form) form.hidden = !offer && !form.hasAttribute("data-always");
    if (trustForm) trustForm.hidden = trusted || offer;
  }
  [form, trustForm].forEach(function (f) {
    if (f) f.addEventListener("submit", function () { f.elements.browser_utc_ms.value = String(Date.now()); });
  });
  render();
  setInterval(render, 1000);
})();
