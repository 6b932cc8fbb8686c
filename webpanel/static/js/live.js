/* Live grid: each tile plays live.mp4 through MSE (ManagedMediaSource on iPhone),
   falling back to refreshed JPEG snapshots. Click or tap enlarges a tile. */
"use strict";
(function () {
  var SNAPSHOT_REFRESH_MS = 2000;
  var MAX_LAG_S = 3.5;              // jump to the live edge when further behind
  var KEEP_BEHIND_S = 20;           // buffer kept behind the playhead
  var RETRY_MS = 2000;
  var BURST_GAP_MS = 400;           // appends closer than this belong to one burst
  var MAX_FAILURES = 3;             // then use snapshots
  var REWIND_S = 30;                // a tile's rewind link plays the recordings from this long ago

  var MS = window.ManagedMediaSource || window.MediaSource;

  function hex2(n) { return (n < 16 ? "0" : "") + n.toString(16); }

  /* Find a box by its 4-char type anywhere in the bytes (init segments are small). */
  function findBox(bytes, type) {
    var t0 = type.charCodeAt(0), t1 = type.charCodeAt(1), t2 = type.charCodeAt(2), t3 = type.charCodeAt(3);
    for (var i = 4; i + 4 <= bytes.length; i++) {
      if (bytes[i] === t0 && bytes[i + 1] === t1 && bytes[i + 2] === t2 && bytes[i + 3] === t3) return i + 4;
    }
    return -1;
  }
  /* The RFC 6381 codec string of the init segment: avc1.PPCCLL or an hvc1 string. */
  function codecOf(bytes) {
    var p = findBox(bytes, "avcC");
    if (p > 0) return "avc1." + hex2(bytes[p + 1]) + hex2(bytes[p + 2]) + hex2(bytes[p + 3]);
    p = findBox(bytes, "hvcC");
    if (p > 0) return "hvc1." + (bytes[p + 1] & 0x1f) + ".6.L" + bytes[p + 12] + ".B0";
    return null;
  }
  /* Offset just after a complete moov box, or -1. */
  function initEnd(bytes) {
    var off = 0;
    while (off + 8 <= bytes.length) {
      var size = ((bytes[off] << 24) >>> 0) + (bytes[off + 1] << 16) + (bytes[off + 2] << 8) + bytes[off + 3];
      var type = String.fromCharCode(bytes[off + 4], bytes[off + 5], bytes[off + 6], bytes[off + 7]);
      if (size < 8 || off + size > bytes.length) return -1;
      off += size;
      if (type === "moov") return off;
    }
    return -1;
  }
  function concat(a, b) {
    var out = new Uint8Array(a.length + b.length);
    out.set(a, 0); out.set(b, a.length);
    return out;
  }

  function LivePlayer(tile) {
    this.tile = tile;
    this.video = tile.querySelector("video");
    this.img = tile.querySelector("img");
    this.stateEl = tile.querySelector("[data-live-state]");
    this.camera = tile.getAttribute("data-camera");
    this.stream = tile.getAttribute("data-grid-stream") || "main";
    this.failures = 0;
    this.mode = null;
    tile.player = this;
  }
  LivePlayer.prototype.url = function (kind) {
    return "/api/cameras/" + encodeURIComponent(this.camera) + "/" + kind + "?stream=" + this.stream;
  };
  LivePlayer.prototype.say = function (text) { if (this.stateEl) this.stateEl.textContent = text; };
  LivePlayer.prototype.start = function () {
    if (MS && this.failures < MAX_FAILURES) this.startMse();
    else this.startSnapshots();
  };
  LivePlayer.prototype.stop = function () {
    this.session = null;
    if (this.abort) this.abort.abort();
    clearInterval(this.timer);
    clearTimeout(this.retry);
    if (this.video.src) { this.video.removeAttribute("src"); this.video.load(); }
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
  };
  LivePlayer.prototype.restart = function (stream) {
    this.stop();
    if (stream) this.stream = stream;
    this.failures = 0;
    this.start();
  };

  LivePlayer.prototype.startMse = function () {
    var self = this, session = {};
    this.session = session;
    this.mode = "mse";
    this.img.hidden = true;
    this.video.hidden = false;
    var ms = new MS();
    if (window.ManagedMediaSource && ms instanceof window.ManagedMediaSource) this.video.disableRemotePlayback = true;
    this.objectUrl = URL.createObjectURL(ms);
    this.video.src = this.objectUrl;
    this.say("connecting…");
    ms.addEventListener("sourceopen", function () {
      if (self.session !== session) return;
      self.pump(ms, session);
    }, { once: true });
  };

  LivePlayer.prototype.pump = function (ms, session) {
    var self = this, video = this.video, sb = null, queue = [], head = new Uint8Array(0);
    this.abort = window.AbortController ? new AbortController() : null;
    function feed() {
      if (!sb || sb.updating || !queue.length || self.session !== session) return;
      var chunk = queue.length === 1 ? queue[0] : queue.reduce(concat);
      queue = [];
      try { sb.appendBuffer(chunk); }
      catch (e) {
        if (e.name === "QuotaExceededError") { trim(0); queue.unshift(chunk); }
        else self.fail("cannot play: " + e.name);
      }
    }
    function trim(keep) {
      if (!sb || sb.updating || !sb.buffered.length) return;
      var from = sb.buffered.start(0), to = video.currentTime - keep;
      if (to - from > 5) sb.remove(from, to);
    }
    function onData(bytes) {
      if (sb) { queue.push(bytes); feed(); return; }
      head = concat(head, bytes);
      if (initEnd(head) < 0) return;
      var codec = codecOf(head), type = 'video/mp4; codecs="' + codec + '"';
      if (!codec || !MS.isTypeSupported(type)) { self.failures = MAX_FAILURES; self.fail("codec not supported here"); return; }
      sb = ms.addSourceBuffer(type);
      var lastEnd = null, burstFrom = null, lastAt = 0, burst = 0;
      sb.addEventListener("updateend", function () {
        if (self.session !== session) return;
        if (sb.buffered.length) {
          var end = sb.buffered.end(sb.buffered.length - 1), now = Date.now();
          // Video may arrive in bursts (long keyframe intervals, buffered writers): allow that much lag.
          if (lastEnd !== null && end > lastEnd) {
            if (now - lastAt > BURST_GAP_MS) burstFrom = lastEnd;
            if (burstFrom !== null) burst = Math.max(burst, end - burstFrom);
            lastAt = now;
          }
          lastEnd = end;
          var allowed = Math.max(MAX_LAG_S, burst + 1.5);
          if (video.currentTime < sb.buffered.start(0) || end - video.currentTime > allowed) {
            video.currentTime = Math.max(sb.buffered.start(0), end - 0.5);
          }
          if (video.paused) { var p = video.play(); if (p && p.catch) p.catch(function () {}); }
          self.failures = 0;
          self.say("live");
          self.tile.setAttribute("data-live-mode", "mse");
        }
        if (video.currentTime - (sb.buffered.length ? sb.buffered.start(0) : 0) > KEEP_BEHIND_S + 10) trim(KEEP_BEHIND_S);
        else feed();
      });
      queue.push(head);
      feed();
    }
    fetch(this.url("live.mp4"), { credentials: "same-origin", cache: "no-store",
                                  signal: this.abort ? this.abort.signal : undefined })
      .then(function (r) {
        if (!r.ok) return r.json().catch(function () { return {}; }).then(function (d) {
          throw new Error(d.error || ("HTTP " + r.status));
        });
        if (!r.body || !r.body.getReader) throw new Error("no streaming");
        var reader = r.body.getReader();
        function read() {
          return reader.read().then(function (res) {
            if (self.session !== session) { reader.cancel(); return; }
            if (res.done) throw new Error("the stream ended");
            onData(res.value);
            return read();
          });
        }
        return read();
      })
      .catch(function (e) {
        if (self.session !== session || (e && e.name === "AbortError")) return;
        self.fail(e.message || "stream error");
      });
  };

  LivePlayer.prototype.fail = function (why) {
    var self = this;
    this.failures += 1;
    this.stop();
    if (this.failures >= MAX_FAILURES) { this.startSnapshots(why); return; }
    this.say(why + "; retrying…");
    this.retry = setTimeout(function () { self.start(); }, RETRY_MS);
  };

  LivePlayer.prototype.startSnapshots = function (why) {
    var self = this;
    this.mode = "snapshots";
    this.video.hidden = true;
    this.img.hidden = false;
    this.tile.setAttribute("data-live-mode", "snapshots");
    this.say(why ? "snapshots (" + why + ")" : "snapshots");
    function refresh() {
      if (document.hidden) return;
      var next = new Image();
      next.onload = function () { self.img.src = next.src; };
      next.src = self.url("snapshot.jpg") + "&_=" + Date.now();
    }
    refresh();
    this.timer = setInterval(refresh, SNAPSHOT_REFRESH_MS);
    // Every so often, try video again.
    this.retry = setTimeout(function () { self.restart(); }, 60e3);
  };

  function enlarge(tile, on) {
    var player = tile.player;
    tile.classList.toggle("enlarged", on);
    tile.setAttribute("aria-label", tile.getAttribute("aria-label").replace(on ? /enlarge$/ : /shrink$/, on ? "shrink" : "enlarge"));
    // The enlarged picture uses the main stream when the grid shows the sub stream.
    var want = on ? "main" : tile.getAttribute("data-grid-stream");
    if (player && player.stream !== want) player.restart(want);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var tiles = document.querySelectorAll("[data-live-tile]");
    tiles.forEach(function (tile) {
      new LivePlayer(tile).start();
      var rewind = tile.querySelector("[data-rewind]");
      if (rewind) rewind.addEventListener("click", function (ev) {
        // The recordings of this camera, playing from REWIND_S ago.
        ev.stopPropagation();
        var t = (Date.now() - REWIND_S * 1000) / 1000;
        rewind.href = rewind.getAttribute("data-href") + "?zoom=hour&t=" + t.toFixed(3);
      });
      var close = tile.querySelector("[data-close]");
      if (close) close.addEventListener("click", function (ev) {
        ev.stopPropagation();
        enlarge(tile, false);
        tile.focus();
      });
      tile.addEventListener("click", function () { enlarge(tile, !tile.classList.contains("enlarged")); });
      tile.addEventListener("keydown", function (ev) {
        if (ev.target !== tile) return;
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); enlarge(tile, !tile.classList.contains("enlarged")); }
        if (ev.key === "Escape") enlarge(tile, false);
      });
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key !== "Escape") return;
      document.querySelectorAll(".tile.enlarged").forEach(function (t) { enlarge(t, false); });
    });
    var hash = window.location.hash.slice(1);
    var target = hash && document.getElementById(hash);
    if (target && target.hasAttribute("data-live-tile")) target.scrollIntoView();
  });
  window.LivePlayer = LivePlayer;
})();
