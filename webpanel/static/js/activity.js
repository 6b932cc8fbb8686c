/* Recordings page, activity: the band of activity on the timeline, previous/next activity
   (buttons and the keys P and N), the number of periods on the view's day, and a
   filmstrip of thumbnails at the starts of activity in the view. */
"use strict";
(function () {
  var DAY = 24 * 3600e3;
  var SEARCH_MS = 7 * DAY;          // previous/next look this far from the playhead
  var EDGE_MS = 1000;               // "next" skips a period starting within this of the playhead
  var THUMB_INTO_MS = 1000;         // a thumbnail shows the keyframe this far into the period
  var FILMSTRIP_MAX = 12;

  var sec = document.getElementById("recordings");
  if (!sec || !sec.recordings) return;
  var rec = sec.recordings, tl = rec.timeline;
  var api = "/api/cameras/" + encodeURIComponent(sec.getAttribute("data-camera"));
  var thumbStream = sec.getAttribute("data-has-sub") ? "&stream=sub" : "";
  var summary = sec.querySelector("[data-activity-summary]");
  var strip = sec.querySelector("[data-filmstrip]");
  var viewKey = null, dayKey = null, stripKey = null;

  function fetchPeriods(a, b) {
    var url = api + "/activity?start=" + (a / 1000).toFixed(3) + "&end=" + (b / 1000).toFixed(3);
    return fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (d) { return { ok: r.ok, d: d }; }); })
      .then(function (res) {
        if (!res.ok) throw new Error(res.d.error || "cannot load the activity");
        return (res.d.periods || []).map(function (p) {
          return { start: p.start_us / 1000, end: p.end_us / 1000 };
        });
      });
  }

  function dayOf(ms) {
    var a = new Date(ms);
    a.setHours(0, 0, 0, 0);
    var b = new Date(a.getTime());
    b.setDate(b.getDate() + 1);     // 23 or 25 hours across a DST change
    return [a.getTime(), b.getTime()];
  }

  function refresh() {
    var a = tl.viewStart, b = tl.viewStart + tl.span, key = a + ":" + b;
    viewKey = key;
    fetchPeriods(a, b).then(function (periods) {
      if (viewKey !== key) return;
      tl.setActivity(periods);
      filmstrip(periods);
      sec.setAttribute("data-activity-loaded", String(periods.length));
    }).catch(function (err) { summary.textContent = err.message; });
    var day = dayOf(rec.state.focus), dkey = day.join(":");
    dayKey = dkey;
    fetchPeriods(day[0], day[1]).then(function (periods) {
      if (dayKey !== dkey) return;
      var n = periods.length;
      summary.textContent = (n === 0 ? "No activity" : n === 1 ? "1 period of activity"
                             : n + " periods of activity") + " on " + PC.fmtDate(day[0]);
      summary.setAttribute("data-day-count", String(n));
    }).catch(function () {});
  }

  function filmstrip(periods) {
    var shown = periods.slice(0, FILMSTRIP_MAX);
    var key = shown.map(function (p) { return p.start; }).join(",");
    if (key === stripKey) return;   // the same thumbnails: keep the loaded pictures
    stripKey = key;
    strip.textContent = "";
    shown.forEach(function (p) {
      var b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-activity-thumb", String(p.start));
      b.title = "Play from " + PC.fmtTime(p.start);
      var img = document.createElement("img");
      img.loading = "lazy";
      img.alt = "Activity at " + PC.fmtTime(p.start);
      img.src = api + "/snapshot.jpg?at=" + ((p.start + THUMB_INTO_MS) / 1000).toFixed(3) + thumbStream;
      b.appendChild(img);
      b.appendChild(document.createTextNode(PC.fmtTime(p.start)));
      b.addEventListener("click", function () { go(p.start); });
      strip.appendChild(b);
    });
    if (periods.length > shown.length) {
      var more = document.createElement("span");
      more.className = "muted";
      more.textContent = "+" + (periods.length - shown.length) + " more: zoom in to see them";
      strip.appendChild(more);
    }
  }

  /* Play from ms, bringing its view in first when it lies outside the shown one. */
  function go(ms) {
    sec.setAttribute("data-activity-target", String(ms));
    if (ms >= tl.viewStart && ms < tl.viewStart + tl.span) { rec.playAt(ms); return; }
    rec.state.focus = ms;
    rec.applyView().then(function () { rec.playAt(ms); });
  }

  function jump(dir) {
    // From where the player is, or is about to be (a jump waiting for fresh runs).
    var at = rec.state.pending != null ? rec.state.pending
      : rec.state.cur && tl.playhead != null ? tl.playhead : rec.state.focus;
    var a = dir > 0 ? at + EDGE_MS : at - SEARCH_MS, b = dir > 0 ? at + SEARCH_MS : at - EDGE_MS;
    sec.setAttribute("data-activity-from", String(at));
    fetchPeriods(a, b).then(function (periods) {
      // The answer is clipped to [a, b): a period starting at a (in the ms the query
      // was rounded to) began before it.
      var starts = periods.map(function (p) { return p.start; })
        .filter(function (s) { return s > a + 1; });
      var target = dir > 0 ? starts[0] : starts[starts.length - 1];
      if (target == null) {
        summary.textContent = dir > 0 ? "No later activity within 7 days."
                                      : "No earlier activity within 7 days.";
        return;
      }
      go(target);
    }).catch(function (err) { summary.textContent = err.message; });
  }

  sec.querySelectorAll("[data-activity-nav]").forEach(function (b) {
    b.addEventListener("click", function () { jump(Number(b.getAttribute("data-activity-nav"))); });
  });
  document.addEventListener("keydown", function (ev) {
    var t = ev.target, tag = t && t.tagName;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || tag === "INPUT" || tag === "SELECT"
        || tag === "TEXTAREA" || (t && t.isContentEditable)) return;
    if (ev.key === "n" || ev.key === "N") { jump(1); ev.preventDefault(); }
    if (ev.key === "p" || ev.key === "P") { jump(-1); ev.preventDefault(); }
  });
  // The page sets data-runs-loaded each time it (re)loads the runs of a view.
  new MutationObserver(refresh).observe(sec, { attributes: true, attributeFilter: ["data-runs-loaded"] });
  if (sec.hasAttribute("data-runs-loaded")) refresh();
  sec.activity = { jump: jump, refresh: refresh };
})();
