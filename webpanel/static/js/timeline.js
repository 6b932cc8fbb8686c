/* picorder timeline: a scrub bar of recorded runs with zoom, hover thumbnails,
   click/drag to play and drag to select a range; two fingers pinch to zoom and drag
   to pan (a trackpad's pinch and sideways scroll do the same); periods of activity as a
   band under the runs. Pure DOM, no dependencies. */
"use strict";
(function () {
  var HOUR = 3600e3, DAY = 24 * HOUR;
  var SPANS = { hour: HOUR, day: DAY, week: 7 * DAY };
  var DRAG_PX = 4;
  var THUMB_DELAY_MS = 150;
  var MIN_SPAN = 5 * 60e3, MAX_SPAN = 31 * DAY;   // how far a pinch zooms in and out
  var WHEEL_ZOOM = 0.01;                          // zoom factor per wheel pixel (e^x)
  var VIEW_SETTLE_MS = 300;                       // a wheel gesture is over after this pause

  function el(tag, cls, parent) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }
  function clamp(v, a, b) { return Math.max(a, Math.min(b, v)); }

  /* Tick step (ms) and label for a span. */
  function tickPlan(span, widthPx) {
    var steps = [60e3, 5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3, HOUR, 2 * HOUR, 3 * HOUR,
                 6 * HOUR, 12 * HOUR, DAY];
    var minPx = 56;
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] / span * widthPx >= minPx) return steps[i];
    }
    return DAY;
  }

  function Timeline(root, opts) {
    this.root = root;
    this.opts = opts || {};
    this.runs = [];
    this.viewStart = 0;
    this.span = DAY;
    this.playhead = null;
    this.now = null;
    this.sel = null;
    this.selectMode = false;
    this.drag = null;
    this.tip = opts.tip || null;
    this.tipImg = opts.tipImg || null;
    this.tipText = opts.tipText || null;
    this._thumbTimer = null;
    this.touches = {};             // pointer id -> clientX of the fingers down
    this.pinch = null;
    root.timeline = this;          // for tests and the page script
    this._bind();
  }

  Timeline.SPANS = SPANS;

  Timeline.prototype.setView = function (startMs, spanMs) {
    this.viewStart = startMs;
    this.span = spanMs;
    this.render();
  };
  Timeline.prototype.setRuns = function (runs) { this.runs = runs || []; this.render(); };
  /* Periods of activity ({start, end} in ms): a band under the recorded runs. */
  Timeline.prototype.setActivity = function (periods) { this.activity = periods || []; this.render(); };
  Timeline.prototype.setPlayhead = function (ms) { this.playhead = ms; this._placePlayhead(); };
  /* "Now": a marker, so that the empty part after the newest video reads as "not yet". */
  Timeline.prototype.setNow = function (ms) { this.now = ms; this._placeNow(); };
  Timeline.prototype.setSelection = function (a, b) {
    this.sel = (a == null || b == null) ? null : { a: Math.min(a, b), b: Math.max(a, b) };
    this._placeSelection();
  };
  Timeline.prototype.timeAt = function (clientX) {
    var r = this.root.getBoundingClientRect();
    var f = clamp((clientX - r.left) / r.width, 0, 1);
    return this.viewStart + f * this.span;
  };
  /* Client x of a time (tests click there). */
  Timeline.prototype.xOf = function (ms) {
    var r = this.root.getBoundingClientRect();
    return r.left + (ms - this.viewStart) / this.span * r.width;
  };
  /* Zoom by factor, keeping the time under clientX in place. */
  Timeline.prototype.zoomAround = function (clientX, factor) {
    var r = this.root.getBoundingClientRect(), f = clamp((clientX - r.left) / r.width, 0, 1);
    var t = this.viewStart + f * this.span, span = clamp(this.span * factor, MIN_SPAN, MAX_SPAN);
    this.setView(t - f * span, span);
  };
  Timeline.prototype.panBy = function (px) {
    this.setView(this.viewStart - px / (this.root.clientWidth || 1) * this.span, this.span);
  };
  /* The page reloads the runs for a view a gesture chose. */
  Timeline.prototype._viewChosen = function () {
    if (this.opts.onView) this.opts.onView(this.viewStart, this.span);
  };
  Timeline.prototype._pinchStart = function () {
    var xs = this._fingers(), r = this.root.getBoundingClientRect();
    var mid = (xs[0] + xs[1]) / 2;
    this.drag = null;              // two fingers never seek or select
    this._hideTip();
    this.pinch = { dist: Math.max(Math.abs(xs[1] - xs[0]), 1), span: this.span,
                   at: this.viewStart + (mid - r.left) / r.width * this.span };
  };
  Timeline.prototype._pinchMove = function () {
    var xs = this._fingers(), r = this.root.getBoundingClientRect(), p = this.pinch;
    var mid = (xs[0] + xs[1]) / 2, dist = Math.max(Math.abs(xs[1] - xs[0]), 1);
    var span = clamp(p.span * p.dist / dist, MIN_SPAN, MAX_SPAN);
    // The time first under the fingers' midpoint stays under it: a pinch zooms, a drag pans.
    this.setView(p.at - (mid - r.left) / r.width * span, span);
  };
  Timeline.prototype._fingers = function () {
    var t = this.touches;
    return Object.keys(t).map(function (k) { return t[k]; }).slice(0, 2);
  };
  Timeline.prototype.pct = function (ms) { return (ms - this.viewStart) / this.span * 100; };
  Timeline.prototype.runAt = function (ms) {
    for (var i = 0; i < this.runs.length; i++) {
      if (this.runs[i].start <= ms && ms < this.runs[i].end) return this.runs[i];
    }
    return null;
  };

  Timeline.prototype.render = function () {
    var root = this.root, self = this;
    root.textContent = "";
    var end = this.viewStart + this.span;
    this.runs.forEach(function (run) {
      if (run.end <= self.viewStart || run.start >= end) return;
      var d = el("div", "run" + (run.trusted === false ? " untrusted" : ""), root);
      var a = Math.max(run.start, self.viewStart), b = Math.min(run.end, end);
      d.style.left = self.pct(a) + "%";
      d.style.width = Math.max(0, self.pct(b) - self.pct(a)) + "%";
      d.title = PC.fmtTime(run.start) + "–" + PC.fmtTime(run.end);
    });
    (this.activity || []).forEach(function (p) {
      if (p.end <= self.viewStart || p.start >= end) return;
      var d = el("div", "activity", root);
      var a = Math.max(p.start, self.viewStart), b = Math.min(p.end, end);
      d.style.left = self.pct(a) + "%";
      d.style.width = Math.max(0, self.pct(b) - self.pct(a)) + "%";
      d.title = "activity " + PC.fmtTime(p.start) + "–" + PC.fmtTime(p.end);
      d.setAttribute("data-activity-start", String(p.start));
    });
    var step = tickPlan(this.span, root.clientWidth || 800);
    var first = new Date(this.viewStart);
    first.setMinutes(0, 0, 0);
    if (step >= DAY) first.setHours(0);
    for (var t = first.getTime(); t <= end; t += step) {
      if (step >= HOUR) {       // stay on local hour boundaries across DST
        var dt = new Date(t);
        if (dt.getMinutes() !== 0) { dt.setMinutes(0, 0, 0); t = dt.getTime(); }
      }
      if (t < this.viewStart) continue;
      var mark = el("div", "tickmark", root);
      mark.style.left = this.pct(t) + "%";
      var label = el("div", "tick", root), at = this.pct(t);
      label.style.left = at + "%";
      if (at < 3) label.style.transform = "none";                    // keep edge labels inside
      else if (at > 97) label.style.transform = "translateX(-100%)";
      label.textContent = step >= DAY
        ? new Date(t).toLocaleDateString(undefined, { weekday: "short", day: "numeric" })
        : PC.fmtTime(t).slice(0, 5);
    }
    this.selEl = el("div", "sel", root);
    this.nowEl = el("div", "nowline", root);
    this.nowEl.setAttribute("data-now-marker", "");
    el("span", null, this.nowEl).textContent = "now";
    this.playEl = el("div", "playhead", root);
    this.hoverEl = el("div", "hoverline", root);
    this.hoverEl.hidden = true;
    this._placeSelection();
    this._placeNow();
    this._placePlayhead();
  };

  Timeline.prototype._placeNow = function () {
    if (!this.nowEl) return;
    var p = this.now == null ? -1 : this.pct(this.now);
    this.nowEl.hidden = p < 0 || p > 100;
    this.nowEl.style.left = p + "%";
    this.nowEl.classList.toggle("label-left", p > 90);   // keep the label inside the bar
  };

  Timeline.prototype._placePlayhead = function () {
    if (!this.playEl) return;
    var p = this.playhead == null ? -1 : this.pct(this.playhead);
    this.playEl.hidden = p < 0 || p > 100;
    this.playEl.style.left = p + "%";
    if (this.playhead != null) this.root.setAttribute("aria-valuetext", PC.fmtDateTime(this.playhead));
  };
  Timeline.prototype._placeSelection = function () {
    if (!this.selEl) return;
    if (!this.sel) { this.selEl.hidden = true; return; }
    var a = clamp(this.pct(this.sel.a), 0, 100), b = clamp(this.pct(this.sel.b), 0, 100);
    this.selEl.hidden = b <= 0 || a >= 100;
    this.selEl.style.left = a + "%";
    this.selEl.style.width = (b - a) + "%";
  };

  Timeline.prototype._showTip = function (clientX, ms) {
    if (!this.tip) return;
    var r = this.root.getBoundingClientRect();
    var x = clamp(clientX - r.left, 43, r.width - 43);
    this.tip.hidden = false;
    this.tip.style.left = x + "px";
    var run = this.runAt(ms);
    this.tipText.textContent = PC.fmtTime(ms) + (run ? "" : " · no recording");
    this.hoverEl.hidden = false;
    this.hoverEl.style.left = this.pct(ms) + "%";
    var self = this;
    clearTimeout(this._thumbTimer);
    if (!run || !this.opts.thumbUrl) { this.tipImg.hidden = true; return; }
    // Round so that nearby hovers share one cached snapshot.
    var grain = Math.max(2000, this.span / 200);
    var at = Math.round(ms / grain) * grain;
    this._thumbTimer = setTimeout(function () {
      var src = self.opts.thumbUrl(clamp(at, run.start, run.end - 1));
      if (self.tipImg.getAttribute("src") !== src) self.tipImg.src = src;
      self.tipImg.hidden = false;
    }, THUMB_DELAY_MS);
  };
  Timeline.prototype._hideTip = function () {
    if (this.tip) this.tip.hidden = true;
    if (this.hoverEl) this.hoverEl.hidden = true;
    clearTimeout(this._thumbTimer);
  };

  Timeline.prototype._bind = function () {
    var self = this, root = this.root;
    root.addEventListener("pointerdown", function (ev) {
      if (ev.button !== 0) return;
      root.setPointerCapture(ev.pointerId);
      if (ev.pointerType !== "mouse") {
        self.touches[ev.pointerId] = ev.clientX;
        if (self._fingers().length === 2) { self._pinchStart(); ev.preventDefault(); return; }
        if (self.pinch) return;
      }
      self.drag = { x: ev.clientX, t: self.timeAt(ev.clientX), moved: false };
      ev.preventDefault();
    });
    root.addEventListener("pointermove", function (ev) {
      if (ev.pointerId in self.touches) self.touches[ev.pointerId] = ev.clientX;
      if (self.pinch) { if (self._fingers().length === 2) self._pinchMove(); return; }
      var t = self.timeAt(ev.clientX);
      if (self.drag) {
        if (Math.abs(ev.clientX - self.drag.x) > DRAG_PX) self.drag.moved = true;
        if (self.selectMode && self.drag.moved) {
          self.setSelection(self.drag.t, t);
          if (self.opts.onSelect) self.opts.onSelect(self.sel.a, self.sel.b, false);
        }
      }
      if (ev.pointerType === "mouse" || self.drag) self._showTip(ev.clientX, t);
    });
    function finish(ev, cancelled) {
      delete self.touches[ev.pointerId];
      if (self.pinch) {
        if (self._fingers().length === 0) { self.pinch = null; self._viewChosen(); }
        return;
      }
      if (!self.drag) return;
      var t = self.timeAt(ev.clientX), drag = self.drag;
      self.drag = null;
      if (ev.pointerType !== "mouse") self._hideTip();
      if (cancelled) return;
      if (self.selectMode) {
        if (drag.moved && self.opts.onSelect) self.opts.onSelect(self.sel.a, self.sel.b, true);
        return;
      }
      if (self.opts.onSeek) self.opts.onSeek(t);
    }
    root.addEventListener("pointerup", function (ev) { finish(ev, false); });
    root.addEventListener("pointercancel", function (ev) { finish(ev, true); });
    root.addEventListener("pointerleave", function () { if (!self.drag) self._hideTip(); });
    root.addEventListener("keydown", function (ev) {
      var step = ev.shiftKey ? 60e3 : 10e3;
      var base = self.playhead != null ? self.playhead : self.viewStart;
      if (ev.key === "ArrowRight") { self.opts.onSeek(base + step); ev.preventDefault(); }
      if (ev.key === "ArrowLeft") { self.opts.onSeek(base - step); ev.preventDefault(); }
    });
    var settle = null;
    root.addEventListener("wheel", function (ev) {
      var sideways = Math.abs(ev.deltaX) > Math.abs(ev.deltaY);
      if (ev.ctrlKey) self.zoomAround(ev.clientX, Math.exp(ev.deltaY * WHEEL_ZOOM));   // trackpad pinch
      else if (sideways || ev.shiftKey) self.panBy(-(sideways ? ev.deltaX : ev.deltaY));
      else return;                 // an ordinary wheel scrolls the page
      ev.preventDefault();
      clearTimeout(settle);
      settle = setTimeout(function () { self._viewChosen(); }, VIEW_SETTLE_MS);
    }, { passive: false });
    window.addEventListener("resize", function () { self.render(); });
  };

  window.Timeline = Timeline;
})();
