/* Recordings page: timeline + native <video> playback of recording.mp4, with the
   wall-clock time of the playhead, range selection and download. */
"use strict";
(function () {
  var HOUR = 3600e3, DAY = 24 * HOUR;
  var WINDOW_MS = 30 * 60e3;        // one recording.mp4 covers at most this; the next follows
  var REFRESH_MS = 30e3;            // reload the runs while the view includes "now"

  var sec = document.getElementById("recordings");
  if (!sec) return;
  var cam = sec.getAttribute("data-camera");
  var api = "/api/cameras/" + encodeURIComponent(cam);
  var exportMaxS = Number(sec.getAttribute("data-export-max-s")) || 86400;
  var $ = function (s) { return sec.querySelector(s); };
  var video = $("[data-video]"), clock = $("[data-wallclock]"), clockDate = $("[data-wallclock-date]");
  var note = $("[data-player-note]"), dateInput = $("[data-date]"), tlStatus = $("[data-tl-status]");
  var startInput = $("[data-range-start]"), endInput = $("[data-range-end]");
  var download = $("[data-download]"), rangeError = $("[data-range-error]"), rangeLen = $("[data-range-length]");
  var selectBtn = $("[data-select-mode]");

  var state = { zoom: "day", focus: Date.now(), runs: [], cur: null, mapping: null, loadedFor: null };

  var tl = new Timeline($("[data-timeline]"), {
    tip: $("[data-tip]"), tipImg: $("[data-tip-img]"), tipText: $("[data-tip-text]"),
    thumbUrl: function (ms) { return api + "/snapshot.jpg?at=" + (ms / 1000).toFixed(3); },
    onSeek: function (ms) { playAt(ms); },
    onSelect: function (a, b) { setRange(Math.round(a / 1000) * 1000, Math.round(b / 1000) * 1000, true); }
  });

  // ------------------------------------------------------------ view and runs
  function midnight(ms) { var d = new Date(ms); d.setHours(0, 0, 0, 0); return d.getTime(); }
  function viewFor(zoom, focus) {
    if (zoom === "hour") { var d = new Date(focus); d.setMinutes(0, 0, 0); return [d.getTime(), HOUR]; }
    if (zoom === "week") { var end = midnight(focus) + DAY; var s = new Date(end); s.setDate(s.getDate() - 7); return [s.getTime(), end - s.getTime()]; }
    var m = midnight(focus), n = new Date(m); n.setDate(n.getDate() + 1);
    return [m, n.getTime() - m];
  }
  function applyView() {
    var v = viewFor(state.zoom, state.focus);
    tl.setView(v[0], v[1]);
    dateInput.value = PC.fmtDate(state.focus);
    sec.querySelectorAll("[data-zoom]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-zoom") === state.zoom));
    });
    return loadRuns();
  }
  function parseRuns(data) {
    return (data.runs || []).map(function (r) {
      return { start: r.start_us / 1000, end: r.end_us / 1000, trusted: r.clock_trusted !== false };
    });
  }
  function loadRuns() {
    var a = tl.viewStart - HOUR, b = tl.viewStart + tl.span + HOUR;
    var key = a + ":" + b;
    state.loadedFor = key;
    tlStatus.textContent = "loading…";
    return fetch(api + "/timeline?start=" + a / 1000 + "&end=" + b / 1000, { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (d) { return { ok: r.ok, d: d }; }); })
      .then(function (res) {
        if (state.loadedFor !== key) return;
        if (!res.ok) { tlStatus.textContent = res.d.error || "cannot load the timeline"; return; }
        state.runs = parseRuns(res.d);
        tl.setRuns(state.runs);
        var total = state.runs.reduce(function (s, r) {
          return s + Math.max(0, Math.min(r.end, tl.viewStart + tl.span) - Math.max(r.start, tl.viewStart));
        }, 0);
        tlStatus.textContent = res.d.message ? res.d.message
          : state.runs.length ? PC.fmtDuration(total / 1000) + " recorded in this view" : "nothing recorded in this view";
        sec.setAttribute("data-runs-loaded", String(state.runs.length));
      })
      .catch(function () { tlStatus.textContent = "cannot load the timeline"; });
  }

  // ------------------------------------------------------------ playback
  function runFrom(ms) {
    for (var i = 0; i < state.runs.length; i++) {
      var r = state.runs[i];
      if (ms < r.end - 500) return r;       // the run holding ms, or the next one
    }
    return null;
  }
  /* X-Picorder-Runs: "wallStartUs-wallEndUs@mediaStartUs, ..." -> [{a, b, m}] in ms. */
  function parseMapping(text) {
    if (!text) return null;
    var out = [];
    text.split(",").forEach(function (part) {
      var m = /^\s*(\d+)-(\d+)@(\d+)\s*$/.exec(part);
      if (m) out.push({ a: +m[1] / 1000, b: +m[2] / 1000, m: +m[3] / 1000 });
    });
    return out.length ? out : null;
  }
  function wallAt(mediaS) {
    var t = mediaS * 1000, cur = state.cur;
    if (!cur) return null;
    var map = state.mapping;
    if (map) {
      var best = map[0];
      for (var i = 0; i < map.length; i++) if (map[i].m <= t) best = map[i];
      return best.a + (t - best.m);
    }
    return cur.start + t;
  }
  function playAt(ms) {
    var run = runFrom(ms);
    if (!run) { note.textContent = "No recording at or after " + PC.fmtDateTime(ms) + "."; return; }
    var start = Math.max(ms, run.start), end = Math.min(run.end, start + WINDOW_MS);
    var url = api + "/recording.mp4?start=" + (start / 1000).toFixed(3) + "&end=" + (end / 1000).toFixed(3);
    state.cur = { start: start, end: end, run: run, url: url };
    state.mapping = null;
    note.textContent = start > ms + 1000 ? "No recording at the chosen time: playing from the next recording." : "";
    video.src = url;
    showWall(start);
    var p = video.play();
    if (p && p.catch) p.catch(function () { note.textContent = "Press play to start."; });
    fetch(url, { method: "HEAD", credentials: "same-origin" }).then(function (r) {
      if (state.cur && state.cur.url === url) state.mapping = parseMapping(r.headers.get("X-Picorder-Runs"));
    }).catch(function () {});
  }
  function showWall(ms) {
    clock.textContent = PC.fmtTime(ms);
    clock.setAttribute("data-wall-ms", String(Math.round(ms)));
    clockDate.textContent = PC.fmtDate(ms);
    tl.setPlayhead(ms);
  }
  function tick() {
    if (state.cur && video.readyState >= 1) {
      var wall = wallAt(video.currentTime);
      if (wall != null) showWall(wall);
    }
    window.requestAnimationFrame(tick);
  }
  video.addEventListener("ended", function () {
    var cur = state.cur;
    if (!cur) return;
    if (cur.end < cur.run.end - 500) { playAt(cur.end); return; }
    var next = runFrom(cur.run.end + 1);
    if (next && next !== cur.run) playAt(next.start);
    else note.textContent = "End of the recordings.";
  });
  video.addEventListener("error", function () {
    if (state.cur) note.textContent = "This part cannot be played (" + (video.error ? video.error.message || video.error.code : "error") + ").";
  });

  // ------------------------------------------------------------ range and download
  function setRange(a, b, fromTimeline) {
    if (a != null) startInput.value = PC.toLocalInput(a);
    if (b != null) endInput.value = PC.toLocalInput(b);
    updateRange(fromTimeline);
  }
  function updateRange(fromTimeline) {
    var a = PC.fromLocalInput(startInput.value), b = PC.fromLocalInput(endInput.value);
    var problem = null;
    if (isNaN(a) || isNaN(b)) problem = "Choose a start and an end time.";
    else if (b <= a) problem = "The end must be after the start.";
    else if ((b - a) / 1000 > exportMaxS) problem = "A download can cover at most " + PC.fmtDuration(exportMaxS) + ".";
    rangeError.hidden = !problem || (isNaN(a) && isNaN(b));
    rangeError.textContent = problem || "";
    download.setAttribute("aria-disabled", String(!!problem));
    download.classList.toggle("disabled", !!problem);
    if (problem) { download.removeAttribute("href"); rangeLen.textContent = ""; }
    else {
      download.href = api + "/recording.mp4?start=" + a / 1000 + "&end=" + b / 1000 + "&download=1";
      rangeLen.textContent = PC.fmtDuration((b - a) / 1000);
    }
    if (!fromTimeline) tl.setSelection(isNaN(a) ? null : a, isNaN(b) ? null : b);
  }
  startInput.addEventListener("change", function () { updateRange(false); });
  endInput.addEventListener("change", function () { updateRange(false); });
  startInput.addEventListener("input", function () { updateRange(false); });
  endInput.addEventListener("input", function () { updateRange(false); });
  download.addEventListener("click", function (ev) {
    if (download.getAttribute("aria-disabled") === "true") { ev.preventDefault(); rangeError.hidden = false; }
  });
  sec.querySelectorAll("[data-mark]").forEach(function (b) {
    b.addEventListener("click", function () {
      var ms = Number(clock.getAttribute("data-wall-ms"));
      if (!ms) return;
      ms = Math.round(ms / 1000) * 1000;
      if (b.getAttribute("data-mark") === "start") setRange(ms, null, false);
      else setRange(null, ms, false);
    });
  });
  selectBtn.addEventListener("click", function () {
    tl.selectMode = !tl.selectMode;
    selectBtn.setAttribute("aria-pressed", String(tl.selectMode));
    selectBtn.classList.toggle("toggled", tl.selectMode);
  });

  // ------------------------------------------------------------ controls
  sec.querySelectorAll("[data-zoom]").forEach(function (b) {
    b.addEventListener("click", function () {
      state.zoom = b.getAttribute("data-zoom");
      if (state.cur && tl.playhead) state.focus = tl.playhead;
      applyView();
    });
  });
  sec.querySelectorAll("[data-nav]").forEach(function (b) {
    b.addEventListener("click", function () {
      state.focus += Number(b.getAttribute("data-nav")) * Timeline.SPANS[state.zoom];
      applyView();
    });
  });
  dateInput.addEventListener("change", function () {
    var m = /^(\d{4})-(\d\d)-(\d\d)$/.exec(dateInput.value);
    if (!m) return;
    var f = new Date(state.focus);
    state.focus = new Date(+m[1], +m[2] - 1, +m[3], f.getHours(), f.getMinutes()).getTime();
    applyView();
  });
  $("[data-now]").addEventListener("click", function () { state.focus = Date.now(); applyView(); });
  var camSelect = document.querySelector("[data-camera-select]");
  if (camSelect) camSelect.addEventListener("change", function () { window.location = camSelect.value; });

  setInterval(function () {
    var now = Date.now();
    if (tl.viewStart <= now && now <= tl.viewStart + tl.span + HOUR && !document.hidden) loadRuns();
  }, REFRESH_MS);

  var params = new URLSearchParams(window.location.search);
  var t = Number(params.get("t"));
  if (params.get("zoom") in Timeline.SPANS) state.zoom = params.get("zoom");
  if (t) state.focus = t * 1000;
  video.poster = api + "/snapshot.jpg";          // the newest picture until something plays
  var first = applyView();
  if (t) first.then(function () { if (!state.cur) playAt(t * 1000); });
  window.requestAnimationFrame(tick);
  sec.recordings = { playAt: playAt, state: state, timeline: tl, loadRuns: loadRuns, applyView: applyView };
})();
