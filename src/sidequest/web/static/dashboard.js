// Sidequest dashboard: the real-time graph. Polls the JSON endpoint every N seconds and draws
// the jobs processed and failed since the previous poll as two SVG polylines. A failed poll
// (Redis down, the server restarting) is retried with a growing wait, never given up.
(function () {
  "use strict";

  var MIN_SECONDS = 2;   // the server clamps too; never poll faster than this
  var MAX_SECONDS = 60;
  var POINTS = 60;       // samples kept on the graph
  var RETRY_CAP_SECONDS = 30;  // longest wait between polls while they fail
  var LEFT = 56, RIGHT = 788, TOP = 16, BOTTOM = 192;

  var box = document.getElementById("realtime");
  if (!box) {
    return;
  }
  var url = box.getAttribute("data-url");
  var seconds = Number(box.getAttribute("data-interval"));
  if (!(seconds >= MIN_SECONDS)) {
    seconds = MIN_SECONDS;
  }
  seconds = Math.min(seconds, MAX_SECONDS);

  var samples = { processed: [], failed: [] };
  var last = null;
  var timer = null;
  var failures = 0;      // failed polls in a row
  var asking = false;    // a poll is under way: showing the tab again must not start another

  function text(id, value) {
    var node = document.getElementById(id);
    if (node) {
      node.textContent = String(value);
    }
  }

  function formatted(value) {
    return Number(value).toLocaleString("en-US");
  }

  function draw() {
    var peak = 1;
    ["processed", "failed"].forEach(function (kind) {
      samples[kind].forEach(function (v) { peak = Math.max(peak, v); });
    });
    var step = (RIGHT - LEFT) / (POINTS - 1);
    ["processed", "failed"].forEach(function (kind) {
      var values = samples[kind];
      var offset = POINTS - values.length;
      var points = values.map(function (v, i) {
        var x = LEFT + (offset + i) * step;
        var y = BOTTOM - (BOTTOM - TOP) * v / peak;
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      document.getElementById("realtime-" + kind).setAttribute("points", points.join(" "));
    });
    text("realtime-max", formatted(peak));
  }

  function update(stats) {
    Object.keys(stats).forEach(function (key) {
      var node = document.querySelector('[data-stat="' + key + '"]');
      if (node) {
        node.textContent = formatted(stats[key]);
      }
    });
    if (last !== null) {
      ["processed", "failed"].forEach(function (kind) {
        var delta = Math.max(0, stats[kind] - last[kind]);
        samples[kind].push(delta);
        if (samples[kind].length > POINTS) {
          samples[kind].shift();
        }
        text("realtime-last-" + kind, formatted(delta));
      });
      draw();
    }
    last = stats;
  }

  // Why a poll failed, as the status line says it while retrying.
  function trouble(status) {
    if (status === 503) {
      return "Redis unreachable";
    }
    if (status === 401) {
      return "logged out (reload the page to log in)";
    }
    return status ? "HTTP " + status : "the dashboard is not answering";
  }

  // The wait before the next poll: the chosen interval, doubled after each failure in a
  // row up to RETRY_CAP_SECONDS (a chosen interval above it stays as it is), so that a Redis
  // or server outage is not hammered and the graph resumes by itself once it is over.
  function delay() {
    var cap = Math.max(seconds, RETRY_CAP_SECONDS);
    return Math.min(seconds * Math.pow(2, failures), cap) * 1000;
  }

  function schedule() {
    asking = false;
    timer = document.hidden ? null : window.setTimeout(poll, delay());
  }

  function poll() {
    timer = null;
    asking = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          var failed = new Error(trouble(response.status));
          failed.shown = true;
          throw failed;
        }
        return response.json();
      })
      .then(function (body) {
        update(body.sidequest);
        failures = 0;
        box.removeAttribute("data-failing");
        text("realtime-status", "updated " + new Date().toLocaleTimeString());
        schedule();
      })
      .catch(function (error) {
        failures += 1;
        // The next success starts from a fresh baseline: the jobs done during the outage
        // are not one poll's worth, and would flatten the graph around one spike.
        last = null;
        box.setAttribute("data-failing", String(failures));
        text("realtime-status", (error.shown ? error.message : trouble(0)) + ", retrying…");
        schedule();
      });
  }

  box.setAttribute("data-polling", "true");
  poll();
  document.addEventListener("visibilitychange", function () {
    // A hidden tab does not poll; it starts again, from a fresh baseline, when shown.
    if (document.hidden) {
      window.clearTimeout(timer);
      timer = null;
    } else if (timer === null && !asking) {
      last = null;
      poll();
    }
  });
})();
