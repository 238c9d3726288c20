/*
 * The Eye's browser module. Any page can include it (no dependencies, no build step).
 *
 * Eye.client: send any event, batched.
 *
 *   var eye = Eye.client({url: "https://eye.example.com", apiKey: browserIngestKey});  // or {token: t}
 *   eye.track(sessionId, "page interaction", "pageview", {host: location.host, path: location.pathname});
 *   eye.flush().then(...);   // also done every 500 ms, at 100 events, and when the page is hidden
 *
 * Eye.tracker: samples the pointer over a whole page and sends it as `mouse / move` events: a
 * batch at least every 250 ms while the pointer moves, and what is left when the page is hidden.
 *
 *   var tracker = Eye.tracker({url: "/api/v1/events", token: t, sessionId: s, onSent: fn});
 *   // or {apiKey: k} instead of {token: t}; tracker.stop() sends what is left and stops.
 *
 * Both make the event_id in the browser, so a retry (network error, 429, 5xx; Retry-After is
 * honoured) is never stored twice. On page hide they send with `fetch(..., {keepalive: true})`
 * rather than navigator.sendBeacon: a beacon cannot carry the key or token header.
 */
(function (global) {
  "use strict";

  var MAX_POINTS = 500; // the contract's limit per event, which keeps a batch under 32 KiB
  var MAX_ATTEMPTS = 5;

  function uuid4() {
    // crypto.randomUUID exists only in secure contexts; getRandomValues exists everywhere.
    var bytes = new Uint8Array(16);
    global.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return (b + 0x100).toString(16).slice(1);
    }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  // One id per page load: points of two tabs (or of a tab before and after a reload) must never
  // be joined by a step. sessionStorage would be copied into a duplicated tab, so it is not used.
  var TAB = uuid4();

  function epochMs(domTimeStamp) {
    // Microsecond precision is plenty, and keeps two distinct samples distinct.
    return Math.round((performance.timeOrigin + domTimeStamp) * 1000) / 1000;
  }

  function tracker(options) {
    var url = options.url || "/api/v1/events";
    var interval = options.interval || 250;
    var target = options.target || global.document;
    var headers = {"Content-Type": "application/json"};
    if (options.token) {
      headers.Authorization = "Bearer " + options.token;
    } else if (options.apiKey) {
      headers["X-API-Key"] = options.apiKey;
    }
    var buffer = [];
    var retries = []; // batches the service could not take yet (network error, 429, 5xx)
    var stats = {points: 0, batches: 0, failures: 0};

    function onMove(ev) {
      var samples = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [];
      if (!samples.length) {
        samples = [ev];
      }
      for (var i = 0; i < samples.length; i++) {
        buffer.push({x: samples[i].clientX, y: samples[i].clientY, t: epochMs(samples[i].timeStamp)});
      }
      if (buffer.length >= MAX_POINTS) {
        flush(false);
      }
    }

    // A batch keeps its event (and so its event_id) across retries: a resend is never a duplicate.
    function makeBatch(points) {
      var last = points[0].t;
      for (var i = 1; i < points.length; i++) {
        last = Math.max(last, points[i].t);
      }
      return {
        lastT: last,
        points: points.length,
        attempt: 0,
        event: {
          event_id: uuid4(),
          session_id: options.sessionId,
          category: "mouse",
          name: "move",
          data: {points: points, viewport: {w: global.innerWidth, h: global.innerHeight}, tab: TAB},
          timestamp: new Date(last).toISOString()
        }
      };
    }

    function send(batch, keepalive) {
      batch.sentAt = performance.now();
      if (options.onSend) {
        options.onSend(batch);
      }
      fetch(url, {
        method: "POST", headers: headers, body: JSON.stringify(batch.event), keepalive: keepalive,
        credentials: "omit"
      }).then(function (response) {
        batch.status = response.status;
        batch.roundTripMs = performance.now() - batch.sentAt;
        if (response.ok) {
          stats.points += batch.points;
          stats.batches += 1;
          batch.totalPoints = stats.points;
          if (options.onSent) {
            options.onSent(batch);
          }
        } else if (response.status === 429 || response.status >= 500) {
          retry(batch);
        } else {
          fail(batch);
        }
      }, function () {
        retry(batch);
      });
    }

    function retry(batch) {
      batch.attempt += 1;
      if (batch.attempt < MAX_ATTEMPTS) {
        retries.push(batch);
      } else {
        fail(batch);
      }
    }

    function fail(batch) {
      stats.failures += 1;
      if (options.onError) {
        options.onError(batch);
      }
    }

    function flush(keepalive) {
      var pending = retries.splice(0, retries.length);
      for (var i = 0; i < pending.length; i++) {
        send(pending[i], keepalive);
      }
      while (buffer.length) {
        send(makeBatch(buffer.splice(0, MAX_POINTS)), keepalive);
      }
    }

    // keepalive lets the last batch outlive the page.
    function onHide() {
      if (global.document.visibilityState === "hidden") {
        flush(true);
      }
    }
    function onPageHide() {
      flush(true);
    }

    target.addEventListener("pointermove", onMove, {passive: true});
    global.document.addEventListener("visibilitychange", onHide);
    global.addEventListener("pagehide", onPageHide);
    var timer = global.setInterval(function () {
      flush(false);
    }, interval);

    return {
      tab: TAB,
      stats: stats,
      flush: function () {
        flush(false);
      },
      stop: function () {
        global.clearInterval(timer);
        target.removeEventListener("pointermove", onMove);
        global.document.removeEventListener("visibilitychange", onHide);
        global.removeEventListener("pagehide", onPageHide);
        flush(true);
      }
    };
  }

  var KEEPALIVE_BYTES = 60 * 1024; // browsers refuse keepalive bodies over 64 KiB in flight

  function client(options) {
    var base = (options.url || "").replace(/\/$/, "");
    var batchSize = Math.min(options.batchSize || 100, 500);
    var interval = options.interval || 500;
    var maxQueue = options.maxQueue || 10000;
    var headers = {"Content-Type": "application/json"};
    if (options.token) {
      headers.Authorization = "Bearer " + options.token;
    } else if (options.apiKey) {
      headers["X-API-Key"] = options.apiKey;
    }
    var queue = [];
    var inFlight = 0;
    var waitUntil = 0; // Retry-After, in performance.now() time
    var stats = {sent: 0, rejected: 0, dropped: 0, retried: 0};

    function track(sessionId, category, name, data, timestamp) {
      var event = {
        event_id: uuid4(), session_id: sessionId, category: category, name: name, data: data || {},
        timestamp: (timestamp instanceof Date ? timestamp : new Date(timestamp || Date.now())).toISOString()
      };
      if (queue.length >= maxQueue) {
        stats.dropped += 1; // never grow without bound, never throw into the page
      } else {
        queue.push({event: event, attempt: 0});
      }
      if (queue.length >= batchSize) {
        flush(false);
      }
      return event.event_id;
    }

    function post(items, keepalive) {
      inFlight += 1;
      return fetch(base + "/api/v1/events/batch", {
        method: "POST", headers: headers, keepalive: keepalive, credentials: "omit",
        body: JSON.stringify({events: items.map(function (item) { return item.event; })})
      }).then(function (response) {
        if (response.ok || response.status === 422) {
          return response.json().then(function (body) {
            stats.sent += body.accepted;
            stats.rejected += body.rejected.length; // final: the server said why, retrying won't help
            if (options.onRejected && body.rejected.length) {
              options.onRejected(body.rejected.map(function (r) { return {event: items[r.index].event, kind: r.kind}; }));
            }
          });
        }
        if (response.status === 429 || response.status >= 500) {
          var after = parseFloat(response.headers.get("Retry-After") || "1");
          waitUntil = performance.now() + 1000 * Math.min(isNaN(after) ? 1 : after, 30);
          requeue(items);
        } else {
          stats.dropped += items.length; // 400/401/403/413: the same request would fail again
        }
      }, function () {
        requeue(items);
      }).then(function () {
        inFlight -= 1;
      });
    }

    function requeue(items) {
      var again = items.filter(function (item) { return ++item.attempt < 8; });
      stats.dropped += items.length - again.length;
      stats.retried += again.length;
      queue = again.concat(queue); // first in, first out: the same event_ids, so never a duplicate
      // Back-off with jitter, on top of any Retry-After.
      var delay = Math.min(30000, 250 * Math.pow(2, again.length ? again[0].attempt : 0)) * (0.5 + Math.random());
      waitUntil = Math.max(waitUntil, performance.now() + delay);
    }

    function takeBatch(keepalive) {
      var items = [], bytes = 0;
      while (queue.length && items.length < batchSize) {
        var size = JSON.stringify(queue[0].event).length;
        if (keepalive && items.length && bytes + size > KEEPALIVE_BYTES) {
          break;
        }
        bytes += size;
        items.push(queue.shift());
      }
      return items;
    }

    function flush(keepalive) {
      var sends = [];
      if (!keepalive && performance.now() < waitUntil) {
        return Promise.resolve(false);
      }
      while (queue.length) {
        sends.push(post(takeBatch(keepalive), keepalive));
      }
      return Promise.all(sends).then(function () { return queue.length === 0; });
    }

    var timer = global.setInterval(function () { flush(false); }, interval);
    function onHide() {
      if (global.document.visibilityState === "hidden") {
        flush(true);
      }
    }
    global.document.addEventListener("visibilitychange", onHide);
    global.addEventListener("pagehide", function () { flush(true); });

    return {
      track: track,
      flush: function () { return flush(false); },
      stats: stats,
      pending: function () { return queue.length + inFlight; },
      stop: function () {
        global.clearInterval(timer);
        global.document.removeEventListener("visibilitychange", onHide);
        return flush(true);
      }
    };
  }

  global.Eye = {tracker: tracker, client: client, uuid4: uuid4};
})(window);
