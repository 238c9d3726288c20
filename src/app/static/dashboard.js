/*
 * The live mouse chart: sends this page's own pointer moves through the public REST API with a
 * short-lived dashboard token, and plots the metrics the service pushes back over Socket.IO.
 * `window.eyeDashboard` exposes its state (tests read `latest.distance`).
 */
(function () {
  "use strict";

  var KEPT = 600; // points per line on the chart; older ones scroll away

  var state = window.eyeDashboard = {
    ready: false,
    connected: false,
    transport: null, // "websocket", or "polling" where the server offers it and WebSocket failed
    sessionId: null,
    sentPoints: 0,
    lastRoundTripMs: null,
    latest: null,
    error: null,
    chart: null
  };
  var sentAt = new Map(); // a batch's latest t -> when it was sent: its metrics carry that t
  var firstT = null;
  var redrawing = false;

  function byId(id) {
    return document.getElementById(id);
  }

  function showStatus() {
    var parts = [
      state.error || (state.connected ? "connected (" + state.transport + ")" : "not connected"),
      state.sentPoints + " points sent",
      "last round trip " + (state.lastRoundTripMs === null ? "–" : Math.round(state.lastRoundTripMs) + " ms")
    ];
    var status = byId("status");
    status.textContent = parts.join(" · ");
    status.className = "status " + (state.connected ? "connected" : "disconnected");
  }

  function makeChart() {
    var line = function (label, axis, color) {
      return {label: label, data: [], yAxisID: axis, borderColor: color, backgroundColor: color,
              pointRadius: 0, borderWidth: 1.5};
    };
    return new window.Chart(byId("chart"), {
      type: "line",
      data: {datasets: [line("velocity (px/s)", "velocity", "#2f6fdb"), line("distance (px)", "distance", "#d9822b")]},
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: {type: "linear", title: {display: true, text: "seconds"}},
          velocity: {type: "linear", position: "left", beginAtZero: true,
                     title: {display: true, text: "velocity (px/s)"}},
          distance: {type: "linear", position: "right", beginAtZero: true, grid: {drawOnChartArea: false},
                     title: {display: true, text: "distance (px)"}}
        }
      }
    });
  }

  function plot(dataset, point) {
    var data = dataset.data;
    data.push(point);
    // Batches processed out of order (several workers) still draw left to right.
    if (data.length > 1 && data[data.length - 2].x > point.x) {
      data.sort(function (a, b) { return a.x - b.x; });
    }
    if (data.length > KEPT) {
      data.splice(0, data.length - KEPT);
    }
  }

  function redraw() {
    if (!redrawing) {
      redrawing = true;
      window.requestAnimationFrame(function () {
        redrawing = false;
        state.chart.update("none");
      });
    }
  }

  function onMetrics(metrics) {
    if (metrics.session_id !== state.sessionId) {
      return;
    }
    state.latest = metrics;
    if (firstT === null) {
      firstT = metrics.t;
    }
    var x = (metrics.t - firstT) / 1000;
    plot(state.chart.data.datasets[0], {x: x, y: metrics.velocity});
    plot(state.chart.data.datasets[1], {x: x, y: metrics.distance});
    if (sentAt.has(metrics.t)) {
      state.lastRoundTripMs = performance.now() - sentAt.get(metrics.t);
      sentAt.delete(metrics.t);
    }
    byId("distance").textContent = Math.round(metrics.distance) + " px";
    byId("velocity").textContent = Math.round(metrics.velocity) + " px/s";
    byId("peak").textContent = Math.round(metrics.peak_velocity) + " px/s";
    byId("points").textContent = String(metrics.points);
    showStatus();
    redraw();
  }

  // The transports the server accepts, WebSocket first. A WebSocket is one connection, so it stays
  // with the web process that holds its session, however many processes share the port. The server
  // offers long-polling (several requests per session, each of which must reach that same process)
  // only where that holds: then it is the fallback for networks that block WebSocket.
  function offeredTransports() {
    var offered = (document.body.getAttribute("data-socketio-transports") || "").split(" ");
    offered = offered.filter(function (name) { return name; });
    return offered.length ? offered : ["websocket"];
  }

  function connect(grant) {
    var transports = offeredTransports();
    var socket = window.io({auth: {token: grant.token}, transports: transports,
                            tryAllTransports: transports.length > 1});
    socket.on("connect", function () {
      state.connected = true;
      state.transport = socket.io.engine.transport.name;
      state.error = null;
      showStatus();
    });
    socket.io.on("open", function () {
      socket.io.engine.on("upgrade", function (transport) {
        state.transport = transport.name;
        showStatus();
      });
    });
    socket.on("disconnect", function () {
      state.connected = false;
      showStatus();
    });
    socket.on("connect_error", function (err) {
      state.connected = false;
      state.error = "not connected: " + err.message;
      showStatus();
    });
    socket.on("mouse_metrics", onMetrics);
    return socket;
  }

  function track(grant) {
    return window.Eye.tracker({
      url: "/api/v1/events",
      token: grant.token,
      sessionId: grant.session_id,
      onSend: function (batch) {
        if (sentAt.size > 1000) {
          sentAt.clear(); // metrics that never came (a lost live message): forget them
        }
        sentAt.set(batch.lastT, batch.sentAt);
      },
      onSent: function (batch) {
        state.sentPoints = batch.totalPoints;
        showStatus();
      },
      onError: function (batch) {
        state.error = batch.status === 401 ? "the token expired: reload the page" :
          "a batch was refused (" + (batch.status || "network error") + ")";
        showStatus();
      }
    });
  }

  function start() {
    state.chart = makeChart();
    showStatus();
    fetch("/dashboard/token", {method: "POST", credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (grant) {
        state.sessionId = grant.session_id;
        state.socket = connect(grant);
        state.tracker = track(grant);
        state.ready = true;
        showStatus();
      })
      .catch(function (err) {
        state.error = "could not get a dashboard token (" + err.message + ")";
        showStatus();
      });
  }

  start();
})();
