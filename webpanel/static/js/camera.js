/* Camera form: the "Test" button probes the stream and shows what it found. */
"use strict";
(function () {
  function text(el, value) { if (el) el.textContent = value; }
  function wire(box) {
    var form = box.closest("form");
    var button = box.querySelector("[data-probe-button]");
    var status = box.querySelector("[data-probe-status]");
    var result = box.querySelector("[data-probe-result]");
    var warnings = box.querySelector("[data-probe-warnings]");
    var img = box.querySelector("[data-probe-snapshot]");
    button.addEventListener("click", function () {
      var val = function (n) { var f = form.elements[n]; return f ? f.value : ""; };
      var body = { url: val("main_url"), username: val("username") || null,
                   password: val("password") || null, transport: val("transport") || "tcp",
                   camera: box.getAttribute("data-camera") || null };
      if (!body.url.trim()) {
        text(status, "Enter the stream URL or the camera's address first.");
        return;
      }
      button.disabled = true;
      result.hidden = true;
      warnings.textContent = "";
      box.setAttribute("data-probe-state", "running");
      text(status, "Testing… this takes about 5 seconds.");
      PC.api("POST", "/api/probe", body).then(function (res) {
        var d = res.data || {};
        if (!res.ok) {
          var errs = d.errors || {};
          text(status, "Cannot test: " + (errs.url || d.error || Object.values(errs).join("; ") || "HTTP " + res.status));
          box.setAttribute("data-probe-state", "error");
          return;
        }
        if (!d.ok) {
          text(status, "Test failed: " + d.error);
          box.setAttribute("data-probe-state", "failed");
          return;
        }
        text(status, "The camera answers.");
        box.setAttribute("data-probe-state", "ok");
        result.hidden = false;
        text(box.querySelector("[data-probe-codec]"), d.codec === "hevc" ? "H.265 (hevc)" : d.codec === "h264" ? "H.264" : d.codec);
        text(box.querySelector("[data-probe-resolution]"), d.width + " × " + d.height);
        text(box.querySelector("[data-probe-fps]"), d.fps != null ? d.fps + " fps" : "unknown");
        text(box.querySelector("[data-probe-bitrate]"), d.bitrate_kbps != null ? Math.round(d.bitrate_kbps) + " kbit/s" : "unknown");
        text(box.querySelector("[data-probe-gop]"), d.keyframe_interval_s != null ? d.keyframe_interval_s + " s" : "longer than the test");
        if (d.snapshot_url) { img.src = d.snapshot_url; img.hidden = false; } else img.hidden = true;
        (d.warnings || []).forEach(function (w) {
          var p = document.createElement("p");
          p.className = "warning";
          p.setAttribute("data-probe-warning", "");
          p.textContent = w;
          warnings.appendChild(p);
        });
      }).catch(function () {
        text(status, "Test failed: the panel did not answer.");
        box.setAttribute("data-probe-state", "error");
      }).then(function () { button.disabled = false; });
    });
  }
  document.querySelectorAll("[data-probe]").forEach(wire);
})();
