/* Size meter bars from data-meter (inline styles are not allowed by the CSP). */
"use strict";
document.querySelectorAll("[data-meter]").forEach(function (el) {
  el.style.width = Math.max(0, Math.min(100, Number(el.getAttribute("data-meter")))) + "%";
});
