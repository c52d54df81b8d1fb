// Sidequest dashboard: the real-time graph. Polls the JSON endpoint every N seconds and draws
// the jobs processed and failed since the previous poll as two SVG polylines.
(function () {
  "use strict";

  var MIN_SECONDS = 2;   // the server clamps too; never poll faster than this
  var MAX_SECONDS = 60;
  var POINTS = 60;       // samples kept on the graph
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

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status === 401 ? "logged out: reload the page" : "HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (body) {
        update(body.sidequest);
        text("realtime-status", "updated " + new Date().toLocaleTimeString());
        timer = document.hidden ? null : window.setTimeout(poll, seconds * 1000);
      })
      .catch(function (error) {
        text("realtime-status", "stopped: " + error.message);
      });
  }

  box.setAttribute("data-polling", "true");
  poll();
  document.addEventListener("visibilitychange", function () {
    // A hidden tab does not poll; it starts again, from a fresh baseline, when shown.
    if (document.hidden) {
      window.clearTimeout(timer);
      timer = null;
    } else if (timer === null) {
      last = null;
      poll();
    }
  });
})();
