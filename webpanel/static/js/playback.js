/* Pieces shared by the recordings page and the synced view: the wall time of a movie's
   media time and back, the timeline's runs, views and their controls, playback speed and
   saving a still. */
"use strict";
window.Playback = (function () {
  var HOUR = 3600e3, DAY = 24 * HOUR;
  var STILL_QUALITY = 0.92;

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
  /* Wall time (ms) of media time mediaS in a movie that starts at startMs. */
  function wallOf(mapping, startMs, mediaS) {
    var t = mediaS * 1000;
    if (!mapping) return startMs + t;
    var best = mapping[0];
    for (var i = 0; i < mapping.length; i++) if (mapping[i].m <= t) best = mapping[i];
    return best.a + (t - best.m);
  }
  /* Media time (s) of wall time wallMs, or null when the movie does not hold it. */
  function mediaOf(mapping, startMs, wallMs) {
    if (!mapping) return wallMs >= startMs ? (wallMs - startMs) / 1000 : null;
    for (var i = 0; i < mapping.length; i++) {
      var r = mapping[i];
      if (r.a <= wallMs && wallMs < r.b) return (r.m + (wallMs - r.a)) / 1000;
    }
    return null;
  }

  /* A movie's HEAD: how its media time maps to wall time, and where it ends (ms, or null). */
  function readMovie(url) {
    return fetch(url, { method: "HEAD", credentials: "same-origin" }).then(function (r) {
      var endUs = Number(r.headers.get("X-Picorder-End-Us"));
      return { mapping: parseMapping(r.headers.get("X-Picorder-Runs")), movieEnd: endUs ? endUs / 1000 : null };
    });
  }
  /* The runs of a /timeline answer, in ms. */
  function parseRuns(data) {
    return (data.runs || []).map(function (r) {
      return { start: r.start_us / 1000, end: r.end_us / 1000, trusted: r.clock_trusted !== false };
    });
  }

  function midnight(ms) { var d = new Date(ms); d.setHours(0, 0, 0, 0); return d.getTime(); }
  /* [start, span] of the timeline for a zoom ("hour", "day", "week") around focus. */
  function viewFor(zoom, focus) {
    if (zoom === "hour") { var d = new Date(focus); d.setMinutes(0, 0, 0); return [d.getTime(), HOUR]; }
    if (zoom === "week") { var end = midnight(focus) + DAY; var s = new Date(end); s.setDate(s.getDate() - 7); return [s.getTime(), end - s.getTime()]; }
    var m = midnight(focus), n = new Date(m); n.setDate(n.getDate() + 1);
    return [m, n.getTime() - m];
  }

  /* Show state.zoom around state.focus: the timeline's view, the day and the pressed zoom button. */
  function showView(sec, tl, state) {
    var v = viewFor(state.zoom, state.focus);
    tl.setView(v[0], v[1]);
    sec.querySelector("[data-date]").value = PC.fmtDate(state.focus);
    sec.querySelectorAll("[data-zoom]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-zoom") === state.zoom));
    });
  }
  /* The view's controls (zoom, earlier and later, a day, now) change state.zoom and
     state.focus, then call applyView(). A zoom centres on zoomFocus() when it gives a time. */
  function bindViewNav(sec, state, applyView, zoomFocus) {
    sec.querySelectorAll("[data-zoom]").forEach(function (b) {
      b.addEventListener("click", function () {
        state.zoom = b.getAttribute("data-zoom");
        var at = zoomFocus();
        if (at) state.focus = at;
        applyView();
      });
    });
    sec.querySelectorAll("[data-nav]").forEach(function (b) {
      b.addEventListener("click", function () {
        state.focus += Number(b.getAttribute("data-nav")) * Timeline.SPANS[state.zoom];
        applyView();
      });
    });
    var dateInput = sec.querySelector("[data-date]");
    dateInput.addEventListener("change", function () {
      var m = /^(\d{4})-(\d\d)-(\d\d)$/.exec(dateInput.value);
      if (!m) return;
      var f = new Date(state.focus);
      state.focus = new Date(+m[1], +m[2] - 1, +m[3], f.getHours(), f.getMinutes()).getTime();
      applyView();
    });
    sec.querySelector("[data-now]").addEventListener("click", function () { state.focus = Date.now(); applyView(); });
  }

  /* The speed select: every video gets the rate, and keeps it when its source changes. */
  function bindSpeed(select, onRate) {
    if (!select) return;
    select.addEventListener("change", function () {
      var rate = Number(select.value);
      if (rate > 0) onRate(rate);
    });
  }
  function setRate(video, rate) {
    video.defaultPlaybackRate = rate;
    video.playbackRate = rate;
  }

  function pad(n, w) { n = String(n); while (n.length < w) n = "0" + n; return n; }
  /* "cam1-20261206T092218Z": the camera and the picture's wall time in UTC. */
  function fileStem(camera, ms) {
    var d = new Date(ms);
    return camera + "-" + d.getUTCFullYear() + pad(d.getUTCMonth() + 1, 2) + pad(d.getUTCDate(), 2) + "T" +
      pad(d.getUTCHours(), 2) + pad(d.getUTCMinutes(), 2) + pad(d.getUTCSeconds(), 2) + "Z";
  }
  /* Save the paused frame as a JPEG at the video's own resolution (the browser encodes
     it: nothing is asked of the box). Resolves to the file name, or null without a picture. */
  function saveStill(video, camera, wallMs) {
    video.pause();
    if (!video.videoWidth || video.readyState < 2) return Promise.resolve(null);
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    var name = fileStem(camera, wallMs) + ".jpg";
    return new Promise(function (resolve) {
      canvas.toBlob(function (blob) {
        if (!blob) { resolve(null); return; }
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = name;
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(function () { URL.revokeObjectURL(a.href); }, 60e3);
        resolve(name);
      }, "image/jpeg", STILL_QUALITY);
    });
  }

  return { wallOf: wallOf, mediaOf: mediaOf, readMovie: readMovie, parseRuns: parseRuns,
           showView: showView, bindViewNav: bindViewNav, bindSpeed: bindSpeed, setRate: setRate,
           saveStill: saveStill };
})();
