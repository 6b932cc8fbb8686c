/* Pieces shared by the recordings page and the synced view: the wall time of a movie's
   media time and back, the timeline's views, playback speed and saving a still. */
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

  function midnight(ms) { var d = new Date(ms); d.setHours(0, 0, 0, 0); return d.getTime(); }
  /* [start, span] of the timeline for a zoom ("hour", "day", "week") around focus. */
  function viewFor(zoom, focus) {
    if (zoom === "hour") { var d = new Date(focus); d.setMinutes(0, 0, 0); return [d.getTime(), HOUR]; }
    if (zoom === "week") { var end = midnight(focus) + DAY; var s = new Date(end); s.setDate(s.getDate() - 7); return [s.getTime(), end - s.getTime()]; }
    var m = midnight(focus), n = new Date(m); n.setDate(n.getDate() + 1);
    return [m, n.getTime() - m];
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

  return { parseMapping: parseMapping, wallOf: wallOf, mediaOf: mediaOf, viewFor: viewFor,
           bindSpeed: bindSpeed, setRate: setRate, fileStem: fileStem, saveStill: saveStill };
})();
