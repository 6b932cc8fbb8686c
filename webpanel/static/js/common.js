/* picorder panel: helpers shared by every page (no dependencies). */
"use strict";
window.PC = (function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /* fetch JSON with the CSRF header; resolves to {ok, status, data}. */
  function api(method, url, body) {
    var opts = { method: method, credentials: "same-origin",
                 headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        return { ok: r.ok, status: r.status, data: data };
      });
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function fmtTime(ms) {
    var d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function fmtDate(ms) {
    var d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  }
  function fmtDateTime(ms) { return fmtDate(ms) + " " + fmtTime(ms); }
  /* Value for <input type=datetime-local step=1>, in the browser's time zone. */
  function toLocalInput(ms) { return fmtDate(ms) + "T" + fmtTime(ms); }
  function fromLocalInput(text) {
    if (!text) return NaN;
    var m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?/.exec(text);
    if (!m) return NaN;
    return new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)).getTime();
  }
  function fmtDuration(s) {
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + r + " s";
  }
  /* Rewrite <time data-us> (UTC from the server) in the browser's time zone (data-seconds:
     with seconds). */
  function localizeTimes(root) {
    (root || document).querySelectorAll("time[data-us]").forEach(function (el) {
      var ms = Number(el.getAttribute("data-us")) / 1000;
      if (!ms) return;
      var today = fmtDate(Date.now()) === fmtDate(ms), n = el.hasAttribute("data-seconds") ? 8 : 5;
      el.textContent = today ? fmtTime(ms).slice(0, n) : fmtDateTime(ms).slice(0, 11 + n);
      el.title = new Date(ms).toString();
    });
  }
  /* Forms with data-confirm ask first. */
  function wireConfirms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
      });
    });
  }
  /* The Menu button (on a narrow screen) opens the navigation as a list; Escape or a
     tap elsewhere closes it. */
  function wireMenu() {
    var button = document.querySelector("[data-menu-button]"), bar = document.querySelector(".topbar");
    if (!button || !bar) return;
    function open(on) {
      bar.classList.toggle("menu-open", on);
      button.setAttribute("aria-expanded", String(on));
    }
    button.addEventListener("click", function (ev) {
      ev.stopPropagation();
      open(!bar.classList.contains("menu-open"));
    });
    document.addEventListener("click", function (ev) {
      if (!bar.contains(ev.target)) open(false);
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && bar.classList.contains("menu-open")) { open(false); button.focus(); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes();
    wireConfirms();
    wireMenu();
  });
  return { api: api, fmtTime: fmtTime, fmtDate: fmtDate, fmtDateTime: fmtDateTime,
           toLocalInput: toLocalInput, fromLocalInput: fromLocalInput, fmtDuration: fmtDuration,
           localizeTimes: localizeTimes };
})();
