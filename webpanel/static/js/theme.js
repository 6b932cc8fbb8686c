/* picorder panel: the colour theme. Dark or light as the system prefers, unless the
   switch in the top bar chose one (remembered in this browser). Loaded in <head> so
   the first paint has the right colours. */
"use strict";
(function () {
  var KEY = "picorder-theme";
  var root = document.documentElement;
  var dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function chosen() {
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }   // storage may be off
  }
  function current() {
    var c = chosen();
    if (c === "dark" || c === "light") return c;
    return dark && dark.matches ? "dark" : "light";
  }
  function apply() {
    var theme = current();
    root.setAttribute("data-theme", theme);
    var button = document.querySelector("[data-theme-switch]");
    if (!button) return;
    button.setAttribute("aria-pressed", String(theme === "dark"));
    button.classList.toggle("toggled", theme === "dark");
    var meta = document.querySelector('meta[name="theme-color"]');
    if (meta) meta.content = theme === "dark" ? "#0b0f15" : "#17202e";
  }
  apply();
  if (dark && dark.addEventListener) dark.addEventListener("change", apply);
  document.addEventListener("DOMContentLoaded", function () {
    apply();
    var button = document.querySelector("[data-theme-switch]");
    if (button) button.addEventListener("click", function () {
      try { window.localStorage.setItem(KEY, current() === "dark" ? "light" : "dark"); } catch (e) { /* not remembered */ }
      apply();
    });
  });
})();
