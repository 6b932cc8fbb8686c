/* Synced view: every chosen camera plays its recording.mp4 from one wall time. One
   clock leads; each player's drift from it (the wall time of its picture minus the
   clock) is measured several times a second and taken back with small playbackRate
   nudges, or a seek when it is far off. While a player waits for data the clock
   holds and every player pauses, so they start and go on together. */
"use strict";
(function () {
  var HOUR = 3600e3;
  var WINDOW_MS = 10 * 60e3;        // a player loads at most this much video at a time
  var TICK_MS = 200;                // the players are compared with the clock this often
  var SEEK_DRIFT_MS = 1000;         // further off than this (times half the speed above 2x): seek
  var STEADY_DRIFT_MS = 40;         // closer than this: play at the plain speed
  var CORRECT_OVER_MS = 2000;       // a nudge takes the drift back over about this ...
  var MAX_NUDGE = 0.25;             // ... changing the speed by at most this fraction
  var LIVE_LAG_MS = 3000;           // the clock stays this far behind now (the newest video)
  var DEFAULT_AGO_MS = 60e3;        // without ?t=, play from this long ago
  var REFRESH_MS = 10e3;            // reload the runs this often while the view includes now
  var EDGE_REFRESH_MS = 2000;       // ... and at most this often when a player ran out of video
  var RELOAD_MS = 1000;             // a player loads a new window at most this often
  var RUN_END_MARGIN_MS = 500;

  var sec = document.getElementById("synced");
  if (!sec) return;
  var $ = function (s) { return sec.querySelector(s); };
  var clock = $("[data-wallclock]"), clockDate = $("[data-wallclock-date]"), playBtn = $("[data-sync-play]");
  var spreadEl = $("[data-sync-spread]"), tlStatus = $("[data-tl-status]");

  var master = { wall: 0, perf: 0, rate: 1, playing: false, held: false };
  var state = { zoom: "hour", focus: Date.now(), loadSeq: 0, runsLoadedAt: 0 };

  function masterWall() {
    if (!master.playing || master.held) return master.wall;
    return master.wall + (performance.now() - master.perf) * master.rate;
  }
  function anchor(wall) { master.wall = wall; master.perf = performance.now(); }

  // ------------------------------------------------------------ one camera's player
  function Player(tile) {
    this.tile = tile;
    this.cam = tile.getAttribute("data-camera");
    this.api = "/api/cameras/" + encodeURIComponent(this.cam);
    this.video = tile.querySelector("video");
    this.note = tile.querySelector("[data-sync-note]");
    this.stateEl = tile.querySelector("[data-sync-state]");
    this.runs = [];
    this.cur = null;
    this.loadedAt = 0;
    var self = this;
    this.video.addEventListener("error", function () {
      if (!self.cur) return;
      self.cur.failed = true;
      self.say("This part cannot be played.");
    });
  }
  Player.prototype.active = function () { return !this.tile.hidden; };
  Player.prototype.say = function (text) {
    this.note.textContent = text;
    this.tile.classList.toggle("idle", !!text);
  };
  Player.prototype.runAt = function (ms) {
    for (var i = 0; i < this.runs.length; i++) {
      var r = this.runs[i];
      if (r.start <= ms && ms < r.end - RUN_END_MARGIN_MS) return r;
    }
    return null;
  };
  Player.prototype.covers = function (ms) {
    var c = this.cur;
    return !!c && !c.failed && c.start <= ms && ms < (c.movieEnd || c.end);
  };
  /* Load the video holding ms (a window of its run), or say there is none. */
  Player.prototype.load = function (ms) {
    var run = this.runAt(ms), self = this;
    this.loadedAt = performance.now();
    if (!run) { this.stop(); this.say("Not recorded at this time."); return; }
    var end = Math.min(run.end, ms + WINDOW_MS);
    var url = this.api + "/recording.mp4?start=" + (ms / 1000).toFixed(3) + "&end=" + (end / 1000).toFixed(3);
    var cur = { start: ms, end: end, url: url, mapping: null, mapped: false, placed: false, movieEnd: null };
    this.cur = cur;
    this.say("");
    this.video.src = url;
    Playback.setRate(this.video, master.rate);
    Playback.readMovie(url).then(function (movie) {
      if (self.cur !== cur) return;
      cur.mapping = movie.mapping;
      cur.movieEnd = movie.movieEnd;
    }).catch(function () {}).then(function () { cur.mapped = true; });
  };
  Player.prototype.stop = function () {
    this.cur = null;
    this.drift = null;
    if (this.video.getAttribute("src")) { this.video.removeAttribute("src"); this.video.load(); }
    this.tile.removeAttribute("data-drift-ms");
  };
  /* The wall time of the picture shown, or null. */
  Player.prototype.wall = function () {
    var c = this.cur;
    if (!c || !c.mapped || this.video.readyState < 1) return null;
    return Playback.wallOf(c.mapping, c.start, this.video.currentTime);
  };
  /* Still loading or seeking the moment the clock shows: the clock waits for it. */
  Player.prototype.waiting = function (w) {
    return this.covers(w) && (!this.cur.mapped || this.video.seeking || this.video.readyState < 3);
  };
  /* Bring the player to the clock's wall time w. */
  Player.prototype.follow = function (w, go) {
    var v = this.video, c = this.cur;
    if (!this.covers(w)) {
      if (performance.now() - this.loadedAt > RELOAD_MS) this.load(w);
      if (!this.covers(w)) {
        if (!v.paused) v.pause();
        if (this.cur && !this.runAt(w)) { this.stop(); this.say("Not recorded at this time."); }
        return;
      }
      c = this.cur;
    }
    if (!c.mapped || v.readyState < 1) return;
    var media = Playback.mediaOf(c.mapping, c.start, w);
    if (media == null) return;
    var drift = this.wall() - w;
    var seekAt = SEEK_DRIFT_MS * Math.max(1, master.rate / 2);
    if (!c.placed || Math.abs(drift) > seekAt) {
      c.placed = true;
      v.currentTime = media;
      drift = 0;
    } else {
      var nudge = Math.abs(drift) < STEADY_DRIFT_MS ? 0
        : Math.max(-MAX_NUDGE, Math.min(MAX_NUDGE, drift / CORRECT_OVER_MS));
      var rate = master.rate * (1 - nudge);
      if (Math.abs(v.playbackRate - rate) > 0.01) v.playbackRate = rate;
    }
    this.drift = drift;
    this.tile.setAttribute("data-drift-ms", String(Math.round(drift)));
    if (go && v.paused) { var p = v.play(); if (p && p.catch) p.catch(function () {}); }
    if (!go && !v.paused) v.pause();
  };

  var players = Array.prototype.map.call(sec.querySelectorAll("[data-sync-tile]"), function (t) {
    return new Player(t);
  });
  function active() { return players.filter(function (p) { return p.active(); }); }

  // ------------------------------------------------------------ timeline and runs
  var tl = new Timeline($("[data-timeline]"), {
    tip: $("[data-tip]"), tipImg: $("[data-tip-img]"), tipText: $("[data-tip-text]"),
    onSeek: function (ms) { seekAll(ms, true); },
    onView: function (start, span) { state.focus = start + span / 2; loadRuns(); }
  });
  /* Runs of every chosen camera, merged: where at least one of them recorded. */
  function union(lists) {
    var all = [].concat.apply([], lists).sort(function (a, b) { return a.start - b.start; }), out = [];
    all.forEach(function (r) {
      var last = out[out.length - 1];
      if (last && r.start <= last.end) {
        last.end = Math.max(last.end, r.end);
        last.trusted = last.trusted && r.trusted;
      } else out.push({ start: r.start, end: r.end, trusted: r.trusted });
    });
    return out;
  }
  function loadRuns() {
    var a = tl.viewStart - HOUR, b = tl.viewStart + tl.span + HOUR, seq = ++state.loadSeq;
    state.runsLoadedAt = performance.now();
    tlStatus.textContent = "loading…";
    return Promise.all(active().map(function (p) {
      return fetch(p.api + "/timeline?start=" + a / 1000 + "&end=" + b / 1000, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { runs: [] }; })
        .then(function (d) { p.runs = Playback.parseRuns(d); return p.runs; })
        .catch(function () { return p.runs; });
    })).then(function (lists) {
      if (seq !== state.loadSeq) return;
      var runs = union(lists);
      tl.setNow(Date.now());
      tl.setRuns(runs);
      tlStatus.textContent = runs.length ? "" : "nothing recorded in this view";
      sec.setAttribute("data-runs-loaded", String(runs.length));
    });
  }
  function applyView() {
    Playback.showView(sec, tl, state);
    return loadRuns();
  }

  // ------------------------------------------------------------ the clock
  function seekAll(ms, play) {
    anchor(Math.min(ms, Date.now() - LIVE_LAG_MS));
    if (play) setPlaying(true);
    active().forEach(function (p) { p.load(master.wall); });
  }
  function setPlaying(on) {
    anchor(masterWall());
    master.playing = on;
    if (!on) players.forEach(function (p) { p.video.pause(); });
    playBtn.textContent = on ? "Pause" : "Play";
    playBtn.setAttribute("aria-pressed", String(on));
  }
  function tick() {
    var w = masterWall(), now = Date.now();
    if (w > now - LIVE_LAG_MS) { anchor(now - LIVE_LAG_MS); w = master.wall; }
    var ps = active();
    var held = master.playing && ps.some(function (p) { return p.waiting(w); });
    if (held !== master.held) { anchor(w); master.held = held; }
    var go = master.playing && !held, walls = [];
    ps.forEach(function (p) {
      p.follow(w, go);
      var pw = p.wall();
      if (p.covers(w) && pw != null) walls.push(pw);
      if (p.cur == null && p.runs.length && w > p.runs[p.runs.length - 1].end - LIVE_LAG_MS &&
          performance.now() - state.runsLoadedAt > EDGE_REFRESH_MS) loadRuns();
    });
    var spread = walls.length > 1 ? Math.max.apply(null, walls) - Math.min.apply(null, walls) : null;
    sec.setAttribute("data-spread-ms", spread == null ? "" : String(Math.round(spread)));
    spreadEl.textContent = held ? "loading…" : spread == null ? "" : "cameras within " + (spread / 1000).toFixed(2) + " s";
    sec.setAttribute("data-playing", String(go));
    // The view follows the clock out of it (not a view a pinch or the arrows chose).
    if (state.lastW != null && inView(state.lastW) && !inView(w)) { state.focus = w; applyView(); }
    state.lastW = w;
  }
  function inView(ms) { return tl.viewStart <= ms && ms <= tl.viewStart + tl.span; }
  function draw() {
    var w = masterWall();
    clock.textContent = PC.fmtTime(w);
    clock.setAttribute("data-wall-ms", String(Math.round(w)));
    clockDate.textContent = PC.fmtDate(w);
    tl.setPlayhead(w);
    window.requestAnimationFrame(draw);
  }

  // ------------------------------------------------------------ controls
  playBtn.addEventListener("click", function () { setPlaying(!master.playing); });
  Playback.bindSpeed($("[data-speed]"), function (rate) {
    anchor(masterWall());
    master.rate = rate;
    players.forEach(function (p) { Playback.setRate(p.video, rate); });
  });
  function chosenNames() { return active().map(function (p) { return p.cam; }); }
  function remember() {
    var q = new URLSearchParams({ t: (masterWall() / 1000).toFixed(3), zoom: state.zoom });
    if (chosenNames().length < players.length) chosenNames().forEach(function (n) { q.append("camera", n); });
    window.history.replaceState(null, "", "?" + q.toString());
  }
  sec.querySelectorAll("[data-sync-choose]").forEach(function (box) {
    box.addEventListener("change", function () {
      var p = players.filter(function (x) { return x.cam === box.value; })[0];
      p.tile.hidden = !box.checked;
      if (!box.checked) p.stop();
      loadRuns().then(function () { if (p.active()) p.load(masterWall()); });
      remember();
    });
  });
  players.forEach(function (p) {
    var link = p.tile.querySelector("[data-sync-open]");
    link.addEventListener("click", function () {
      link.href = link.getAttribute("data-href") + "?zoom=hour&t=" + (masterWall() / 1000).toFixed(3);
    });
  });
  Playback.bindViewNav(sec, state, applyView, masterWall);     // a zoom centres on the clock
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== " " || /^(INPUT|SELECT|TEXTAREA|BUTTON|A)$/.test(ev.target.tagName)) return;
    ev.preventDefault();
    setPlaying(!master.playing);
  });
  setInterval(function () {
    if (tl.viewStart <= Date.now() && Date.now() <= tl.viewStart + tl.span + HOUR && !document.hidden) loadRuns();
  }, REFRESH_MS);
  setInterval(remember, REFRESH_MS);

  var params = new URLSearchParams(window.location.search);
  var t = Number(params.get("t")) * 1000 || Date.now() - DEFAULT_AGO_MS;
  if (params.get("zoom") in Timeline.SPANS) state.zoom = params.get("zoom");
  state.focus = t;
  anchor(t);
  applyView().then(function () { seekAll(t, true); });
  setInterval(tick, TICK_MS);
  window.requestAnimationFrame(draw);
  sec.synced = { master: master, players: players, masterWall: masterWall, seekAll: seekAll,
                 setPlaying: setPlaying, timeline: tl };
})();
