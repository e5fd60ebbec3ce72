// cutover's dashboard: times in the viewer's zone, countdowns, and a
// rollout's live figures from the page's server-sent events. Everything
// else works without this script.
"use strict";

function localTimes(root) {
  root.querySelectorAll("time[datetime]:not(.countdown)").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) { t.textContent = d.toLocaleString(); t.title = t.getAttribute("datetime"); }
  });
}

function countdowns() {
  document.querySelectorAll("time.countdown").forEach(function (t) {
    var left = Math.round((new Date(t.getAttribute("datetime")) - Date.now()) / 1000);
    t.textContent = left > 0 ? "in " + left + " s" : "now";
  });
}

function pct(x) { return Math.max(0, Math.min(100, x)); }

function figure(track, what) {
  if (!track) { return "–"; }
  if (what === "rps") { return track.requests_per_second.toFixed(1); }
  if (what === "errors") { return track.error_rate == null ? "–" : (track.error_rate * 100).toFixed(2) + " %"; }
  return track.p95_ms == null ? "–" : Math.round(track.p95_ms) + " ms";
}

// Each figure over the rollout (its last HISTORY updates), per service and
// track, drawn as lines.
var HISTORY = 120;
var series = {};

function value(track, what) {
  if (!track) { return null; }
  if (what === "rps") { return track.requests_per_second; }
  if (what === "errors") { return track.error_rate; }
  return track.p95_ms;
}

function drawCharts(block, s) {
  var mine = series[s.service] || (series[s.service] = {});
  block.querySelectorAll("svg.chart").forEach(function (svg) {
    var what = svg.getAttribute("data-chart");
    var both = mine[what] || (mine[what] = { stable: [], canary: [] });
    ["stable", "canary"].forEach(function (track) {
      both[track].push(value(s[track], what));
      if (both[track].length > HISTORY) { both[track].shift(); }
    });
    var max = 0;
    both.stable.concat(both.canary).forEach(function (v) { if (v != null && v > max) { max = v; } });
    ["stable", "canary"].forEach(function (track) {
      var points = [];
      both[track].forEach(function (v, i) {
        if (v == null) { return; }
        // Spread over the width: the chart covers the rollout seen so far
        // (up to the last HISTORY updates).
        var x = both[track].length > 1 ? i * (120 / (both[track].length - 1)) : 0;
        var y = max > 0 ? 38 - (v / max) * 36 : 38;
        points.push(x.toFixed(1) + "," + y.toFixed(1));
      });
      var line = svg.querySelector("polyline." + track);
      if (line) { line.setAttribute("points", points.join(" ")); }
    });
  });
}

function applyService(block, s) {
  drawCharts(block, s);
  var step = block.querySelector(".step");
  if (step) { step.textContent = s.step && s.steps ? "step " + s.step + " of " + s.steps : s.stage.replace(/_/g, " "); }
  var next = block.querySelector(".next");
  if (next) {
    next.textContent = "";
    if (s.step_ends_at) {
      next.append("next ");
      var t = document.createElement("time");
      t.className = "countdown";
      t.setAttribute("datetime", s.step_ends_at);
      next.append(t);
    } else if (s.paused_left_ms != null) {
      next.textContent = Math.floor(s.paused_left_ms / 1000) + " s left (paused)";
    }
  }
  var canary = pct(s.canary_percent), stable = 100 - canary;
  var rs = block.querySelector("rect.stable"), rc = block.querySelector("rect.canary");
  if (rs && rc) {
    rs.setAttribute("width", stable);
    rc.setAttribute("x", stable);
    rc.setAttribute("width", canary);
  }
  var ss = block.querySelector(".stable-share"), cs = block.querySelector(".canary-share");
  if (ss) { ss.textContent = Math.round(stable); }
  if (cs) { cs.textContent = Math.round(canary); }
  ["stable", "canary"].forEach(function (track) {
    ["rps", "errors", "p95"].forEach(function (what) {
      var cell = block.querySelector('[data-f="' + track + "-" + what + '"]');
      if (cell) { cell.textContent = figure(s[track], what); }
    });
  });
}

function applyLive(v, source) {
  var state = document.getElementById("state");
  if (state) { state.textContent = v.state; state.className = "state " + v.state; }
  var phase = document.getElementById("phase");
  if (phase && v.phase) { phase.textContent = "(" + v.phase + (v.paused ? ", paused" : "") + ")"; }
  var missing = false;
  v.services.forEach(function (s) {
    var block = document.querySelector('.service[data-service="' + CSS.escape(s.service) + '"]');
    if (block) { applyService(block, s); } else { missing = true; }
  });
  document.querySelectorAll("form[data-button]").forEach(function (f) {
    f.hidden = !v.buttons[f.getAttribute("data-button")];
  });
  var body = document.getElementById("events");
  if (body) {
    v.events.forEach(function (e) {
      if (body.querySelector('tr[data-id="' + e.id + '"]')) { return; }
      var tr = document.createElement("tr");
      tr.setAttribute("data-id", e.id);
      var when = document.createElement("td"), t = document.createElement("time");
      t.setAttribute("datetime", e.at);
      t.textContent = new Date(e.at).toLocaleString();
      when.append(t);
      var kind = document.createElement("td"), code = document.createElement("code");
      code.textContent = e.kind;
      kind.append(code);
      var msg = document.createElement("td");
      msg.textContent = e.message;
      tr.append(when, kind, msg);
      body.append(tr);
    });
  }
  if (v.finished) {
    source.close();
    var reason = document.getElementById("reason");
    if (reason && v.reason) { reason.textContent = v.reason; }
    var ended = document.getElementById("ended");
    if (ended) { ended.textContent = new Date().toLocaleString(); }
  } else if (missing) {
    // A service the page was drawn without (the rollout began since): draw it.
    source.close();
    window.location.reload();
  }
  countdowns();
}

document.addEventListener("DOMContentLoaded", function () {
  localTimes(document);
  countdowns();
  window.setInterval(countdowns, 1000);
  var live = document.getElementById("live");
  if (live && live.dataset.live && window.EventSource) {
    var source = new EventSource(live.dataset.live);
    source.addEventListener("live", function (m) { applyLive(JSON.parse(m.data), source); });
    source.addEventListener("gone", function () { source.close(); });
  }
});
