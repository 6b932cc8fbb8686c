/* Recordings page: timeline + native <video> playback of recording.mp4, with the
   wall-clock time of the playhead, range selection and download. */
"use strict";
(function () {
  var HOUR = 3600e3;
  var WINDOW_MS = 30 * 60e3;        // one recording.mp4 covers at most this; the next follows
  var REFRESH_MS = 10e3;            // reload the runs while the view includes "now"
  var FRESH_MS = 2e3;               // runs older than this are reloaded before playing the newest
  var LIVE_EDGE_MS = 10e3;          // the newest run ending this close to now is still recording
  var WAIT_NEWER_MS = 1e3;          // at the live edge, look for newer video this often ...
  var MIN_CHUNK_MS = 3e3;           // ... and play it once there is this much (fewer reloads)

  var sec = document.getElementById("recordings");
  if (!sec) return;
  var cam = sec.getAttribute("data-camera");
  var api = "/api/cameras/" + encodeURIComponent(cam);
  var exportMaxS = Number(sec.getAttribute("data-export-max-s")) || 86400;
  var $ = function (s) { return sec.querySelector(s); };
  var video = $("[data-video]"), clock = $("[data-wallclock]"), clockDate = $("[data-wallclock-date]");
  var note = $("[data-player-note]"), tlStatus = $("[data-tl-status]");
  var startInput = $("[data-range-start]"), endInput = $("[data-range-end]");
  var download = $("[data-download]"), rangeError = $("[data-range-error]"), rangeLen = $("[data-range-length]");
  var selectBtn = $("[data-select-mode]"), rangeNote = $("[data-range-note]");

  var state = { zoom: "day", focus: Date.now(), runs: [], cur: null, mapping: null, loadedFor: null,
                loadedAt: 0, rangeSeq: 0 };

  var tl = new Timeline($("[data-timeline]"), {
    tip: $("[data-tip]"), tipImg: $("[data-tip-img]"), tipText: $("[data-tip-text]"),
    thumbUrl: function (ms) { return api + "/snapshot.jpg?at=" + (ms / 1000).toFixed(3); },
    onSeek: function (ms) { playAt(ms); },
    onView: function (start, span) { state.focus = start + span / 2; loadRuns(); },
    onSelect: function (a, b) { setRange(Math.round(a / 1000) * 1000, Math.round(b / 1000) * 1000, true); }
  });

  // ------------------------------------------------------------ view and runs
  function applyView() {
    Playback.showView(sec, tl, state);
    return loadRuns();
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
        state.runs = Playback.parseRuns(res.d);
        state.loadedAt = Date.now();
        tl.setNow(Date.now());
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
  function isNewest(run) { return run === state.runs[state.runs.length - 1]; }

  // ------------------------------------------------------------ playback
  function runFrom(ms) {
    for (var i = 0; i < state.runs.length; i++) {
      var r = state.runs[i];
      if (ms < r.end - 500) return r;       // the run holding ms, or the next one
    }
    return null;
  }
  function wallAt(mediaS) {
    return state.cur ? Playback.wallOf(state.mapping, state.cur.start, mediaS) : null;
  }
  /* Play from ms. The newest run grows while the camera records: its end is reloaded
     first, so the movie reaches the newest complete fragment (about 1 s behind). */
  function playAt(ms) {
    var run = runFrom(ms);
    if (run && isNewest(run) && Date.now() - state.loadedAt > FRESH_MS) {
      state.pending = ms;
      loadRuns().then(function () { if (state.pending === ms) { state.pending = null; play(ms); } });
      return;
    }
    state.pending = null;
    play(ms);
  }
  function play(ms) {
    var run = runFrom(ms);
    if (!run) { note.textContent = "No recording at or after " + PC.fmtDateTime(ms) + "."; return; }
    var start = Math.max(ms, run.start), end = Math.min(run.end, start + WINDOW_MS);
    var url = api + "/recording.mp4?start=" + (start / 1000).toFixed(3) + "&end=" + (end / 1000).toFixed(3);
    var cur = { start: start, end: end, run: run, url: url, movieEnd: null };
    state.cur = cur;
    state.mapping = null;
    clearTimeout(state.waitTimer);
    sec.removeAttribute("data-end-of-recordings");
    note.textContent = start > ms + 1000 ? "No recording at the chosen time: playing from the next recording." : "";
    video.src = url;
    showWall(start);
    var p = video.play();
    if (p && p.catch) p.catch(function () { note.textContent = "Press play to start."; });
    Playback.readMovie(url).then(function (movie) {
      if (state.cur !== cur) return;
      state.mapping = movie.mapping;
      cur.movieEnd = movie.movieEnd;
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
  /* At the end of a movie: carry on from where it ended (the next window, the next run,
     or video recorded since it was built); at the end of the newest video while the
     camera still records, wait for more; otherwise say so. Never jump back. */
  function continueAfter(cur) {
    if (state.cur !== cur) return;
    var from = cur.movieEnd || cur.end;
    loadRuns().then(function () {
      if (state.cur !== cur) return;
      var next = runFrom(from), last = state.runs[state.runs.length - 1];
      var live = last && Date.now() - last.end < LIVE_EDGE_MS;
      var at = next ? Math.max(next.start, from) : null;
      if (next && at < next.end - 500 && !(live && next === last && next.end - at < MIN_CHUNK_MS)) {
        play(at);
        return;
      }
      if (live) {
        note.textContent = "Waiting for newer video…";
        state.waitTimer = setTimeout(function () { continueAfter(cur); }, WAIT_NEWER_MS);
        return;
      }
      note.textContent = "End of the recordings.";
      sec.setAttribute("data-end-of-recordings", "1");
    });
  }
  video.addEventListener("ended", function () { if (state.cur) continueAfter(state.cur); });
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
    rangeNote.hidden = true;
    rangeNote.textContent = "";
    if (problem) { download.removeAttribute("href"); rangeLen.textContent = ""; state.rangeSeq++; }
    else {
      setDownload(a, b);
      rangeLen.textContent = PC.fmtDuration((b - a) / 1000);
      clipToRecorded(a, b);
    }
    if (!fromTimeline) tl.setSelection(isNaN(a) ? null : a, isNaN(b) ? null : b);
  }
  function setDownload(a, b) {
    download.href = api + "/recording.mp4?start=" + (a / 1000).toFixed(3) + "&end=" + (b / 1000).toFixed(3) +
      "&download=1";
  }
  function disableDownload(text) {
    rangeError.textContent = text;
    rangeError.hidden = false;
    download.setAttribute("aria-disabled", "true");
    download.classList.add("disabled");
    download.removeAttribute("href");
  }
  /* Ask which part of [a, b) is recorded: the download covers only that, and the form
     says how much it is before anything is downloaded. */
  function clipToRecorded(a, b) {
    var seq = ++state.rangeSeq;
    sec.setAttribute("data-range-checked", "0");
    fetch(api + "/timeline?start=" + a / 1000 + "&end=" + b / 1000, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (seq !== state.rangeSeq || !d) return;
        var runs = Playback.parseRuns(d);
        var recorded = runs.reduce(function (s, r) { return s + (r.end - r.start); }, 0);
        sec.setAttribute("data-range-checked", "1");
        if (!runs.length) { disableDownload("Nothing is recorded in this range."); return; }
        var first = runs[0].start, last = runs[runs.length - 1].end;
        setDownload(first, last);
        if (recorded < b - a - 1000) {
          rangeNote.textContent = "Only " + PC.fmtDuration(recorded / 1000) + " of this range is recorded" +
            " (" + PC.fmtTime(first) + "–" + PC.fmtTime(last) + "): the download holds only that.";
          rangeNote.hidden = false;
        }
      })
      .catch(function () {});
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
  /* A zoom centres on the playhead once something plays. */
  Playback.bindViewNav(sec, state, applyView, function () { return state.cur && tl.playhead; });
  Playback.bindSpeed($("[data-speed]"), function (rate) { Playback.setRate(video, rate); });
  var stillBtn = $("[data-save-still]");
  stillBtn.addEventListener("click", function () {
    var ms = Number(clock.getAttribute("data-wall-ms"));
    if (!state.cur || !ms) { note.textContent = "Play something first: the still is the paused picture."; return; }
    Playback.saveStill(video, cam, ms).then(function (name) {
      note.textContent = name ? "Saved " + name + "." : "No picture to save yet.";
    });
  });
  /* Every camera at the playhead (or the view's moment). */
  var syncedLink = $("[data-synced-link]");
  syncedLink.addEventListener("click", function () {
    var at = state.cur && tl.playhead ? tl.playhead : state.focus;
    var q = new URLSearchParams({ t: (at / 1000).toFixed(3), zoom: state.zoom });
    syncedLink.href = syncedLink.getAttribute("data-href") + "?" + q.toString();
  });
  var camSelect = document.querySelector("[data-camera-select]");
  /* Another camera at the same moment and zoom: playing on from the playhead, or the same view. */
  if (camSelect) camSelect.addEventListener("change", function () {
    var q = new URLSearchParams({ zoom: state.zoom });
    if (state.cur && tl.playhead) q.set("t", (tl.playhead / 1000).toFixed(3));
    else q.set("focus", (state.focus / 1000).toFixed(3));
    window.location = camSelect.value + "?" + q.toString();
  });

  setInterval(function () {
    var now = Date.now();
    tl.setNow(now);
    if (tl.viewStart <= now && now <= tl.viewStart + tl.span + HOUR && !document.hidden) loadRuns();
  }, REFRESH_MS);

  var params = new URLSearchParams(window.location.search);
  var t = Number(params.get("t")), focus = Number(params.get("focus"));
  if (params.get("zoom") in Timeline.SPANS) state.zoom = params.get("zoom");
  if (focus) state.focus = focus * 1000;
  if (t) state.focus = t * 1000;
  video.poster = api + "/snapshot.jpg";          // the newest picture until something plays
  var first = applyView();
  if (t) first.then(function () { if (!state.cur) playAt(t * 1000); });
  window.requestAnimationFrame(tick);
  sec.recordings = { playAt: playAt, state: state, timeline: tl, loadRuns: loadRuns, applyView: applyView,
                     wallAt: wallAt };
})();
