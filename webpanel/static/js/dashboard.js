/* Dashboard: refresh each camera card's state and figures from /api/status. */
"use strict";
(function () {
  var STATUS_MS = 5000, THUMB_MS = 30000;
  var WORDS = { RUNNING: "recording", STARTING: "starting", BACKOFF: "retrying", STOPPED: "stopped",
                STOPPING: "stopping", FATAL: "failed" };

  function badgeClass(s) {
    if (s.problem || s.state === "FATAL" || s.state === "BACKOFF") return "bad";
    return s.state === "RUNNING" ? "ok" : "warn";
  }
  function when(us) {
    if (!us) return "never";
    var ms = us / 1000;
    return PC.fmtDate(ms) === PC.fmtDate(Date.now()) ? PC.fmtTime(ms).slice(0, 5) : PC.fmtDateTime(ms).slice(0, 16);
  }
  function update(card, s) {
    var q = function (sel) { return card.querySelector(sel); };
    var badge = q("[data-state]");
    if (badge.textContent === "disabled") return;
    badge.className = "badge " + badgeClass(s);
    badge.textContent = s.problem || WORDS[s.state] || String(s.state).toLowerCase();
    var problem = q("[data-problem]");
    problem.hidden = !s.problem;
    problem.textContent = s.problem ? s.problem + " since " + when(s.since_utc_us) : "";
    q("[data-fps]").textContent = s.fps != null ? Number(s.fps).toFixed(1) : "—";
    q("[data-bitrate]").textContent = s.bitrate_kbps != null ? Math.round(s.bitrate_kbps) + " kbit/s" : "—";
    q("[data-last-segment]").textContent = when(s.last_segment_utc_us);
  }
  function poll() {
    if (document.hidden) return;
    PC.api("GET", "/api/status").then(function (res) {
      if (!res.ok) return;
      var streams = res.data.streams || [];
      streams.forEach(function (s) {
        if (s.stream !== "main") return;
        var card = document.querySelector('[data-camera="' + CSS.escape(s.camera) + '"]');
        if (card) update(card, s);
      });
    });
  }
  function refreshThumbs() {
    if (document.hidden) return;
    document.querySelectorAll("[data-thumb]").forEach(function (img) {
      var next = new Image(), base = img.src.split("?")[0];
      next.onload = function () { img.src = next.src; };
      next.src = base + "?_=" + Date.now();
    });
  }
  document.querySelectorAll("[data-thumb]").forEach(function (img) {
    img.addEventListener("error", function () { img.classList.add("missing"); });
  });
  setInterval(poll, STATUS_MS);
  setInterval(refreshThumbs, THUMB_MS);
})();
