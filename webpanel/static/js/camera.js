/* Camera form: "Test" probes the stream and shows what it found; saving tests first and
   says what the test found (a failed test offers "Save anyway"). */
"use strict";
(function () {
  function text(el, value) { if (el) el.textContent = value; }
  function codecName(c) { return c === "hevc" ? "H.265 (hevc)" : c === "h264" ? "H.264" : c; }
  function wire(box) {
    var form = box.closest("form");
    var button = box.querySelector("[data-probe-button]");
    var status = box.querySelector("[data-probe-status]");
    var result = box.querySelector("[data-probe-result]");
    var warnings = box.querySelector("[data-probe-warnings]");
    var img = box.querySelector("[data-probe-snapshot]");
    var anyway = box.querySelector("[data-save-anyway]");
    var val = function (n) { var f = form.elements[n]; return f ? f.value : ""; };
    var inputs = function () {
      return JSON.stringify([val("main_url"), val("username"), val("password"), val("transport")]);
    };
    var initial = inputs(), last = null;       // last: {inputs, outcome} of the newest test

    function show(kind, message) {
      text(status, message);
      status.className = kind === "failed" || kind === "error" ? "problem" : kind === "ok" ? "ok-text" : "muted";
      // A failure is an alert (read out at once); anything else a polite status.
      status.setAttribute("role", kind === "failed" || kind === "error" ? "alert" : "status");
      box.setAttribute("data-probe-state", kind);
    }
    function showResult(d) {
      result.hidden = false;
      text(box.querySelector("[data-probe-codec]"), codecName(d.codec));
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
    }
    /* Probe the stream; resolves to {ok, summary} or {ok: false, error}. */
    function runTest(lead) {
      var body = { url: val("main_url"), username: val("username") || null,
                   password: val("password") || null, transport: val("transport") || "tcp",
                   camera: box.getAttribute("data-camera") || null };
      var asked = inputs();
      button.disabled = true;
      result.hidden = true;
      anyway.hidden = true;
      warnings.textContent = "";
      show("running", lead + " This takes about 5 seconds.");
      return PC.api("POST", "/api/probe", body).then(function (res) {
        var d = res.data || {}, outcome;
        if (!res.ok) {
          var errs = d.errors || {};
          outcome = { ok: false, badInput: res.status === 400,
                      error: "cannot test: " + (errs.url || d.error || Object.values(errs).join("; ") || "HTTP " + res.status) };
          show("error", "The test failed: " + outcome.error.replace(/^cannot test: /, "cannot test, "));
        } else if (!d.ok) {
          outcome = { ok: false, error: d.error };
          show("failed", "The test failed: " + d.error + ".");
        } else {
          outcome = { ok: true, summary: codecName(d.codec) + " " + d.width + " × " + d.height +
                      (d.fps != null ? " at " + d.fps + " fps" : "") };
          show("ok", "The camera answers: " + outcome.summary + ".");
          showResult(d);
        }
        last = { inputs: asked, outcome: outcome };
        return outcome;
      }).catch(function () {
        show("error", "The test failed: the panel did not answer.");
        return { ok: false, error: "the panel did not answer" };
      }).then(function (outcome) { button.disabled = false; return outcome; });
    }
    function submitWith(result, detail) {
      form.elements.probe_result.value = result;
      form.elements.probe_detail.value = detail || "";
      form.submit();
    }
    button.addEventListener("click", function () {
      if (!val("main_url").trim()) { show("error", "Enter the stream URL or the camera's address first."); return; }
      runTest("Testing…");
    });
    anyway.querySelector("button").addEventListener("click", function () {
      submitWith("failed", last && last.outcome.error);
    });
    form.addEventListener("submit", function (ev) {
      var editing = !!box.getAttribute("data-camera");
      // An empty URL is the server's to refuse; an edit that keeps the stream needs no test.
      if (!val("main_url").trim()) return;
      if (editing && inputs() === initial) { form.elements.probe_result.value = "unchanged"; return; }
      ev.preventDefault();
      var reuse = last && last.inputs === inputs() ? Promise.resolve(last.outcome) : null;
      var submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      (reuse || runTest("Testing the camera before saving…")).then(function (outcome) {
        submit.disabled = false;
        if (outcome.ok) { submitWith("ok", outcome.summary); return; }
        // Input the test refuses: the server shows each field's error (and saves nothing).
        if (outcome.badInput) { submitWith("", ""); return; }
        anyway.hidden = false;
        anyway.querySelector("button").focus();
      });
    });
  }
  document.querySelectorAll("[data-probe]").forEach(wire);
})();
