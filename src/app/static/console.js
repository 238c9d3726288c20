/*
 * The data team's console: reads the read API with a key the user pastes, and draws traffic,
 * refusals, the failing event types and lookups by event or session.
 *
 * The key lives in this tab's sessionStorage only: never in a URL, a cookie, the DOM or a log. It
 * leaves the page only in the X-API-Key header of fetches to this origin (relative URLs; the CSP's
 * connect-src 'self' forbids any other). `window.eyeConsole` exposes the page's state for tests; it
 * holds whether keys are set, never the keys.
 */
(function () {
  "use strict";

  var STORED_KEYS = {read: "eye.console.readKey", admin: "eye.console.adminKey"};
  // The windows offered, each with the steps that keep a chart readable (and within the API's
  // 1440 steps); the first is the default.
  var RANGES = {
    "1h": {ms: 3600e3, steps: ["1m", "5m"]},
    "24h": {ms: 86400e3, steps: ["5m", "15m", "1h"]},
    "7d": {ms: 7 * 86400e3, steps: ["1h", "15m", "1d"]}
  };
  var STEP_MS = {"1m": 60e3, "5m": 300e3, "15m": 900e3, "1h": 3600e3, "1d": 86400e3};
  var ERRORS_SAMPLED = 200; // refusals read per failing type to count its field errors
  var TYPES_SHOWN = 20; // failing types detailed: each costs one or two API calls
  var SERIES_DRAWN = 9; // types drawn one by one; the rest are summed as "other types"
  var SESSION_EVENTS = 500;
  var MOUSE_METRICS = 1000;
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  var COLORS = ["#2f6fdb", "#d9822b", "#1a8f4c", "#8e44ad", "#c0392b", "#16a0a0", "#b8860b",
                "#e05297", "#5d6d7e", "#7f8c8d"];

  var state = window.eyeConsole = {
    ready: false,
    loading: false,
    loads: 0, // loads completed: a test waits for it to grow
    error: null,
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
    keys: {read: false, admin: false}, // whether each is set; the keys themselves are never here
    window: null,
    volume: null,
    summary: null,
    failingTypes: [],
    unregistered: [],
    totals: {stored: null, refused: null}, // what the two charts draw, summed
    lookups: {event: null, session: null}
  };
  var charts = {volume: null, refusals: null, mouse: null};
  var loadSeq = 0; // a slower, older load must not draw over a newer one

  function byId(id) {
    return document.getElementById(id);
  }

  // --- the keys -------------------------------------------------------------------------------

  function storedKey(which) {
    try {
      return window.sessionStorage.getItem(STORED_KEYS[which]);
    } catch (err) {
      return null; // storage disabled: the page asks for the key again
    }
  }

  function storeKey(which, value) {
    try {
      window.sessionStorage.setItem(STORED_KEYS[which], value);
      return true;
    } catch (err) {
      showStatus("This browser refuses to keep the key for this tab (sessionStorage): " + err.message, true);
      return false;
    }
  }

  function showKeys() {
    state.keys.read = !!storedKey("read");
    state.keys.admin = !!storedKey("admin");
    byId("read-key-state").textContent = state.keys.read ? "set for this tab" : "none";
    byId("admin-key-state").textContent = state.keys.admin ? "set for this tab" : "none";
  }

  // Takes the pasted key out of its input at once: after this, no element holds it.
  function takeKey(which) {
    var input = byId(which + "-key");
    var value = input.value.trim();
    input.value = "";
    if (!value) {
      showStatus("Paste a " + which + " key first.", true);
      return;
    }
    if (storeKey(which, value)) {
      showKeys();
      load();
    }
  }

  function forgetKeys() {
    try {
      window.sessionStorage.removeItem(STORED_KEYS.read);
      window.sessionStorage.removeItem(STORED_KEYS.admin);
    } catch (err) {
      // Nothing was kept, then.
    }
    byId("read-key").value = "";
    byId("admin-key").value = "";
    loadSeq += 1; // answers still on their way are dropped
    state.loading = false;
    showKeys();
    clearData();
    showStatus("Keys forgotten. Paste a read key to begin.", false);
  }

  // --- talking to the API ---------------------------------------------------------------------

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (name) {
      if (params[name] !== undefined && params[name] !== null && params[name] !== "") {
        parts.push(encodeURIComponent(name) + "=" + encodeURIComponent(params[name]));
      }
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  // A relative path under /api/v1/ only, so the key goes to this origin and nowhere else.
  // `purpose` words the refusal of a key ("read", "replay").
  function api(path, key, purpose, options) {
    options = options || {};
    var headers = {"Accept": "application/json", "X-API-Key": key};
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    return window.fetch(path, {
      method: options.method || "GET",
      headers: headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "omit", // the API reads no cookie; send none
      cache: "no-store",
      referrerPolicy: "no-referrer",
      redirect: "error" // never carry the key's header on to wherever a redirect points
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (!response.ok) {
          throw new ApiError(response.status, describeFailure(response.status, body, purpose));
        }
        return body;
      });
    }, function (err) {
      throw new ApiError(0, "Network error: the service did not answer (" + err.message + ").");
    });
  }

  function describeFailure(status, body, purpose) {
    var said = body && body.message ? body.message : "";
    if (status === 401 || status === 403) {
      return "This key cannot " + purpose + " (HTTP " + status + (said ? ": " + said : "") + ").";
    }
    if (status === 429) {
      return "Too many requests for this key: try again in a moment (HTTP 429).";
    }
    return "HTTP " + status + (said ? ": " + said : "") + (body && body.errors ? " " + JSON.stringify(body.errors) : "");
  }

  function messageOf(err) {
    return err instanceof ApiError ? err.message : "Unexpected error: " + (err && err.message || err);
  }

  // --- the window -----------------------------------------------------------------------------

  function showSteps() {
    var select = byId("step");
    var steps = RANGES[byId("range").value].steps;
    select.replaceChildren();
    steps.forEach(function (step) {
      var option = document.createElement("option");
      option.value = step;
      option.textContent = step;
      select.appendChild(option);
    });
  }

  // Up to the end of the current step, aligned on the step, so the buckets fall on round times and
  // the current step (still filling) is the chart's last bar.
  function currentWindow() {
    var range = byId("range").value;
    var step = byId("step").value;
    var until = (Math.floor(Date.now() / STEP_MS[step]) + 1) * STEP_MS[step];
    var since = until - RANGES[range].ms;
    return {range: range, step: step, since: new Date(since).toISOString(), until: new Date(until).toISOString()};
  }

  function formatTime(iso, withDate) {
    var options = withDate ? {dateStyle: "medium", timeStyle: "medium"} : {hour: "2-digit", minute: "2-digit"};
    return new Intl.DateTimeFormat(undefined, options).format(new Date(iso));
  }

  // A bucket's label: the time of day, with the weekday once the window spans days.
  function bucketLabel(iso, range) {
    var options = range === "7d" ? {weekday: "short", hour: "2-digit", minute: "2-digit"}
                                 : {hour: "2-digit", minute: "2-digit"};
    return new Intl.DateTimeFormat(undefined, options).format(new Date(iso));
  }

  // --- loading --------------------------------------------------------------------------------

  function load() {
    var key = storedKey("read");
    if (!key) {
      showStatus("Paste a read key to begin.", false);
      return Promise.resolve();
    }
    var win = currentWindow();
    var seq = ++loadSeq;
    state.window = win;
    state.loading = true;
    byId("window-text").textContent = "From " + formatTime(win.since, true) + " to " + formatTime(win.until, true) +
      " (" + state.timeZone + "), by " + win.step + ".";
    showStatus("Loading…", false);
    // The same window for both: a type's share divides its refusals by its traffic of that window.
    return Promise.all([
      api("/api/v1/stats/volume" + query({since: win.since, until: win.until, step: win.step}), key, "read"),
      api("/api/v1/errors/summary" + query({since: win.since, until: win.until}), key, "read")
    ]).then(function (answers) {
      if (seq !== loadSeq) {
        return null;
      }
      state.volume = answers[0];
      state.summary = answers[1];
      drawTraffic(answers[0], win.range);
      showUnregistered(answers[1].unregistered);
      state.failingTypes = failingTypes(answers[1], answers[0]);
      showFailingTypes(state.failingTypes);
      return Promise.all(state.failingTypes.slice(0, TYPES_SHOWN).map(function (type) {
        return loadTypeDetails(type, key, win, seq);
      }));
    }).then(function () {
      if (seq === loadSeq) {
        state.loading = false;
        state.error = null;
        state.loads += 1;
        showStatus("Loaded at " + formatTime(new Date().toISOString(), true) + ".", false);
      }
    }).catch(function (err) {
      if (seq === loadSeq) {
        state.loading = false;
        showStatus(messageOf(err), true);
      }
    });
  }

  function clearData() {
    state.volume = state.summary = null;
    state.failingTypes = [];
    state.unregistered = [];
    state.lookups = {event: null, session: null};
    state.totals = {stored: null, refused: null};
    ["volume", "refusals", "mouse"].forEach(function (name) {
      if (charts[name]) {
        charts[name].destroy();
        charts[name] = null;
      }
    });
    byId("stored-total").textContent = "";
    byId("refused-total").textContent = "";
    byId("window-text").textContent = "";
    byId("failing-types").tBodies[0].replaceChildren();
    byId("unregistered").tBodies[0].replaceChildren();
    byId("event-result").replaceChildren();
    byId("session-result").replaceChildren();
    byId("mouse-box").hidden = true;
  }

  // --- the two traffic charts -----------------------------------------------------------------

  function drawTraffic(volume, range) {
    var labels = volume.buckets.map(function (iso) { return bucketLabel(iso, range); });
    var stored = volume.stored.slice(0, SERIES_DRAWN).map(function (series) {
      return {label: series.category + " / " + series.name, data: series.counts.slice()};
    });
    var rest = volume.stored.slice(SERIES_DRAWN);
    if (rest.length) {
      stored.push({label: "other types (" + rest.length + ")", data: volume.buckets.map(function (_, i) {
        return rest.reduce(function (sum, series) { return sum + series.counts[i]; }, 0);
      })});
    }
    var refused = volume.refused.map(function (series) {
      return {label: series.kind, data: series.counts.slice()};
    });
    charts.volume = drawBars(charts.volume, "volume-chart", labels, stored);
    charts.refusals = drawBars(charts.refusals, "refusals-chart", labels, refused);
    // Summed from what the charts hold, so a test compares the drawing itself with the API.
    state.totals = {stored: chartTotal(charts.volume), refused: chartTotal(charts.refusals)};
    byId("stored-total").textContent = "— " + state.totals.stored + " in the window";
    byId("refused-total").textContent = "— " + state.totals.refused + " in the window";
  }

  function drawBars(chart, canvasId, labels, datasets) {
    datasets.forEach(function (dataset, i) {
      var color = COLORS[i % COLORS.length];
      dataset.backgroundColor = color;
      dataset.borderColor = color;
    });
    if (!chart) {
      return new window.Chart(byId(canvasId), {
        type: "bar",
        data: {labels: labels, datasets: datasets},
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: {mode: "index", intersect: false},
          scales: {x: {stacked: true, ticks: {autoSkip: true, maxRotation: 0}},
                   y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}}
        }
      });
    }
    chart.data.labels = labels;
    chart.data.datasets = datasets;
    chart.update("none");
    return chart;
  }

  function chartTotal(chart) {
    return chart.data.datasets.reduce(function (sum, dataset) {
      return sum + dataset.data.reduce(function (a, b) { return a + b; }, 0);
    }, 0);
  }

  // --- failing types --------------------------------------------------------------------------

  // One row per (category, name), its refusals of every kind summed, its stored events from the
  // volume of the same window, most refused first.
  function failingTypes(summary, volume) {
    var types = {};
    var list = [];
    summary.by_type.forEach(function (row) {
      var id = JSON.stringify([row.category, row.name]);
      if (!types[id]) {
        types[id] = {category: row.category, name: row.name, refused: 0, kinds: {}, stored: 0};
        list.push(types[id]);
      }
      types[id].refused += row.count;
      types[id].kinds[row.kind] = (types[id].kinds[row.kind] || 0) + row.count;
    });
    volume.stored.forEach(function (series) {
      var type = types[JSON.stringify([series.category, series.name])];
      if (type) {
        type.stored = series.total;
      }
    });
    list.forEach(function (type) {
      type.share = type.refused / (type.refused + type.stored);
      type.details = null; // filled by loadTypeDetails
    });
    return list.sort(function (a, b) { return b.refused - a.refused; });
  }

  function refusalsPath(type, win, limit) {
    return "/api/v1/errors" + query({category: type.category, name: type.name, since: win.since, until: win.until,
                                     limit: limit});
  }

  function loadTypeDetails(type, key, win, seq) {
    var listed = api(refusalsPath(type, win, ERRORS_SAMPLED), key, "read");
    var adminKey = storedKey("admin");
    var dryRun = adminKey ? api("/api/v1/errors/replay", adminKey, "replay", {method: "POST", body: {
      category: type.category, name: type.name, since: win.since, until: win.until, dry_run: true, limit: 1000
    }}).catch(function (err) {
      return {failed: messageOf(err)}; // the read side still shows; the row says why replay did not
    }) : Promise.resolve(null);
    return Promise.all([listed, dryRun]).then(function (answers) {
      if (seq !== loadSeq) {
        return;
      }
      var items = answers[0].items;
      type.details = {
        sampled: items.length,
        more: !!answers[0].next_cursor,
        fieldErrors: countFieldErrors(items),
        sample: items.length ? items[items.length - 1].raw : null, // the latest of those read
        replay: answers[1]
      };
      showFailingTypes(state.failingTypes);
    });
  }

  // How many of `items` have an error at each field path, most common first. List positions are
  // written `*`, so the 3rd and the 40th point failing alike count as one error.
  function countFieldErrors(items) {
    var counts = {};
    items.forEach(function (item) {
      var seen = {};
      errorPaths(item.errors, "", seen);
      Object.keys(seen).forEach(function (path) {
        counts[path] = counts[path] || {path: path, count: 0, message: seen[path]};
        counts[path].count += 1;
      });
    });
    return Object.keys(counts).map(function (path) { return counts[path]; })
      .sort(function (a, b) { return b.count - a.count || (a.path < b.path ? -1 : 1); });
  }

  // Field errors are marshmallow's: nested objects by field (or list index), ending in a list of messages.
  function errorPaths(errors, prefix, seen) {
    if (typeof errors === "string") {
      seen[prefix || "(item)"] = seen[prefix || "(item)"] || errors;
    } else if (Array.isArray(errors)) {
      errors.forEach(function (entry) { errorPaths(entry, prefix, seen); });
    } else if (errors && typeof errors === "object") {
      Object.keys(errors).forEach(function (field) {
        var part = /^\d+$/.test(field) ? "*" : field;
        errorPaths(errors[field], prefix ? prefix + "." + part : part, seen);
      });
    }
  }

  function showFailingTypes(types) {
    var body = byId("failing-types").tBodies[0];
    body.replaceChildren();
    types.slice(0, TYPES_SHOWN).forEach(function (type) {
      var row = body.insertRow();
      row.dataset.category = type.category;
      row.dataset.name = type.name;
      var name = row.insertCell();
      name.appendChild(el("div", type.category + " / " + type.name, "type-name"));
      var link = el("a", "refusals in the API", "api-link");
      link.href = refusalsPath(type, state.window); // category, name and window only: never a key
      name.appendChild(link);
      var refused = row.insertCell();
      refused.className = "number";
      refused.appendChild(el("div", String(type.refused)));
      Object.keys(type.kinds).forEach(function (kind) {
        refused.appendChild(el("div", kind + ": " + type.kinds[kind], "hint"));
      });
      var share = row.insertCell();
      share.className = "number";
      share.textContent = (100 * type.share).toFixed(1) + " %";
      share.title = type.refused + " refused, " + type.stored + " stored";
      row.appendChild(fieldErrorsCell(type.details));
      row.appendChild(sampleCell(type.details));
      row.appendChild(replayCell(type.details));
    });
    if (types.length > TYPES_SHOWN) {
      var more = body.insertRow().insertCell();
      more.colSpan = 6;
      more.textContent = (types.length - TYPES_SHOWN) + " more types refused, fewer times each.";
    }
    byId("failing-empty").hidden = types.length > 0;
  }

  function fieldErrorsCell(details) {
    var cell = document.createElement("td");
    cell.className = "field-errors";
    if (!details) {
      cell.textContent = "…";
      return cell;
    }
    var list = document.createElement("ol");
    details.fieldErrors.slice(0, 3).forEach(function (error) {
      var entry = document.createElement("li");
      entry.appendChild(el("code", error.path));
      entry.appendChild(document.createTextNode(" × " + error.count + ": " + error.message));
      list.appendChild(entry);
    });
    cell.appendChild(list);
    cell.appendChild(el("div", "of " + details.sampled + (details.more ? " (the first read)" : "") + " refusals",
                        "hint"));
    return cell;
  }

  function sampleCell(details) {
    var cell = document.createElement("td");
    if (details && details.sample !== null) {
      cell.appendChild(el("pre", details.sample, "sample")); // text, never HTML: it is what a client sent
    } else {
      cell.textContent = details ? "–" : "…";
    }
    return cell;
  }

  function replayCell(details) {
    var cell = document.createElement("td");
    cell.className = "replay";
    var replay = details && details.replay;
    if (!details) {
      cell.textContent = "…";
    } else if (!replay) {
      cell.textContent = "needs an admin key";
      cell.classList.add("hint");
    } else if (replay.failed) {
      cell.textContent = replay.failed;
      cell.classList.add("error");
    } else {
      cell.appendChild(el("div", replay.would_pass + " of " + replay.matched + (replay.next_cursor ? "+" : "") +
                              " would pass now"));
      Object.keys(replay.still_failing).forEach(function (kind) {
        cell.appendChild(el("div", "still " + kind + ": " + replay.still_failing[kind], "hint"));
      });
      if (replay.not_replayable) {
        cell.appendChild(el("div", "not replayable: " + replay.not_replayable, "hint"));
      }
    }
    return cell;
  }

  function showUnregistered(rows) {
    state.unregistered = rows;
    var body = byId("unregistered").tBodies[0];
    body.replaceChildren();
    rows.forEach(function (type) {
      var row = body.insertRow();
      row.insertCell().textContent = type.category;
      row.insertCell().textContent = type.name;
      var count = row.insertCell();
      count.className = "number";
      count.textContent = String(type.count);
    });
    byId("unregistered-empty").hidden = rows.length > 0;
  }

  // --- lookups --------------------------------------------------------------------------------

  // The id from its input, checked here: it goes into a URL path.
  function lookupId(inputId, what, resultId) {
    var value = byId(inputId).value.trim();
    var key = storedKey("read");
    var result = byId(resultId);
    result.replaceChildren();
    if (!key) {
      result.appendChild(el("p", "Paste a read key first.", "error"));
      return null;
    }
    if (!UUID.test(value)) {
      result.appendChild(el("p", "A " + what + " is a UUID, e.g. 0b6f5a0e-3f7c-4b8e-9a51-2d1f7c9e4a10.", "error"));
      return null;
    }
    result.appendChild(el("p", "Looking…", "hint"));
    return {id: value.toLowerCase(), key: key, result: result};
  }

  // A 404 answers "nothing known", which is a finding, not a failure.
  function orNotFound(promise) {
    return promise.catch(function (err) {
      if (err instanceof ApiError && err.status === 404) {
        return null;
      }
      throw err;
    });
  }

  function findEvent() {
    var asked = lookupId("event-id", "event id", "event-result");
    if (!asked) {
      return Promise.resolve();
    }
    return orNotFound(api("/api/v1/events/" + asked.id, asked.key, "read")).then(function (found) {
      state.lookups.event = {event_id: asked.id, found: !!found, stored: found ? found.stored : [],
                             refused: found ? found.refused : []};
      showEvent(asked.result, state.lookups.event);
    }).catch(function (err) {
      state.lookups.event = {event_id: asked.id, error: messageOf(err)};
      asked.result.replaceChildren(el("p", messageOf(err), "error"));
    });
  }

  function showEvent(result, found) {
    result.replaceChildren();
    if (!found.found) {
      result.appendChild(el("p", "Nothing stored or refused carries this id (an event accepted moments ago may " +
                                 "still be on its way to storage)."));
      return;
    }
    result.appendChild(el("h3", "Stored copies: " + found.stored.length));
    if (found.stored.length) {
      result.appendChild(table(["Application", "Type", "Session", "Timestamp", "Received"],
        found.stored.map(function (copy) {
          return [copy.application || "–", copy.category + " / " + copy.name, sessionLink(copy.session_id),
                  formatTime(copy.timestamp, true), formatTime(copy.received_at, true)];
        }), "stored-copies"));
    }
    result.appendChild(el("h3", "Refusals: " + found.refused.length));
    if (found.refused.length) {
      result.appendChild(table(["Kind", "Application", "Type", "Received", "Field errors"],
        found.refused.map(function (refusal) {
          return [refusal.kind, refusal.application || "–",
                  (refusal.category || "?") + " / " + (refusal.name || "?"),
                  formatTime(refusal.received_at, true), el("code", JSON.stringify(refusal.errors))];
        }), "refusals"));
    }
  }

  // A session id in a result: a button that looks the session up.
  function sessionLink(sessionId) {
    var button = el("button", sessionId, "link");
    button.type = "button";
    button.addEventListener("click", function () {
      byId("session-id").value = sessionId;
      findSession();
    });
    return button;
  }

  function findSession() {
    var asked = lookupId("session-id", "session id", "session-result");
    if (!asked) {
      return Promise.resolve();
    }
    var base = "/api/v1/sessions/" + asked.id;
    return Promise.all([
      orNotFound(api(base, asked.key, "read")),
      orNotFound(api(base + "/events" + query({limit: SESSION_EVENTS}), asked.key, "read")),
      orNotFound(api(base + "/mouse-metrics" + query({limit: MOUSE_METRICS}), asked.key, "read"))
    ]).then(function (answers) {
      state.lookups.session = {
        session_id: asked.id,
        found: !!answers[0],
        summary: answers[0],
        events: answers[1] ? answers[1].items : [],
        moreEvents: !!(answers[1] && answers[1].next_cursor),
        metrics: answers[2] ? answers[2].items : []
      };
      showSession(asked.result, state.lookups.session);
    }).catch(function (err) {
      state.lookups.session = {session_id: asked.id, error: messageOf(err)};
      asked.result.replaceChildren(el("p", messageOf(err), "error"));
      byId("mouse-box").hidden = true;
    });
  }

  function showSession(result, session) {
    result.replaceChildren();
    if (!session.found) {
      result.appendChild(el("p", "No event of this session is stored."));
      byId("mouse-box").hidden = true;
      return;
    }
    var summary = session.summary;
    result.appendChild(el("p", summary.event_count + " events from " + formatTime(summary.first_event_at, true) +
                               " to " + formatTime(summary.last_event_at, true) + ", sent by " +
                               (summary.applications.join(", ") || "–") + "."));
    result.appendChild(el("h3", "Events, in order" + (session.moreEvents ? " (the first " + SESSION_EVENTS + ")" : "")));
    result.appendChild(table(["Timestamp", "Type", "Application", "Event id", "Data"],
      session.events.map(function (event) {
        return [formatTime(event.timestamp, true), event.category + " / " + event.name, event.application,
                el("code", event.event_id), el("code", abridged(JSON.stringify(event.data)))];
      }), "session-events"));
    drawMouse(session.metrics);
  }

  function abridged(text) {
    return text.length > 160 ? text.slice(0, 160) + "…" : text;
  }

  // Distance and velocity against seconds since the session's first metric, as on /dashboard.
  function drawMouse(metrics) {
    var box = byId("mouse-box");
    box.hidden = metrics.length === 0;
    if (!metrics.length) {
      return;
    }
    // Several workers may process a session's batches out of order: draw them left to right.
    var points = metrics.slice().sort(function (a, b) { return a.t - b.t; });
    var first = points[0].t;
    var velocity = points.map(function (m) { return {x: (m.t - first) / 1000, y: m.velocity}; });
    var distance = points.map(function (m) { return {x: (m.t - first) / 1000, y: m.distance}; });
    if (charts.mouse) {
      charts.mouse.data.datasets[0].data = velocity;
      charts.mouse.data.datasets[1].data = distance;
      charts.mouse.update("none");
      return;
    }
    var line = function (label, axis, color, data) {
      return {label: label, data: data, yAxisID: axis, borderColor: color, backgroundColor: color,
              pointRadius: 2, borderWidth: 1.5};
    };
    charts.mouse = new window.Chart(byId("mouse-chart"), {
      type: "line",
      data: {datasets: [line("velocity (px/s)", "velocity", COLORS[0], velocity),
                        line("distance (px)", "distance", COLORS[1], distance)]},
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

  // --- DOM helpers ----------------------------------------------------------------------------

  // Text always goes in as textContent: everything shown came from clients.
  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function table(headings, rows, className) {
    var node = el("table", null, className);
    var head = node.createTHead().insertRow();
    headings.forEach(function (heading) {
      head.appendChild(el("th", heading));
    });
    var body = node.createTBody();
    rows.forEach(function (cells) {
      var row = body.insertRow();
      cells.forEach(function (value) {
        var cell = row.insertCell();
        if (value instanceof Node) {
          cell.appendChild(value);
        } else {
          cell.textContent = value === null || value === undefined ? "" : String(value);
        }
      });
    });
    return node;
  }

  function showStatus(text, isError) {
    state.error = isError ? text : null;
    var status = byId("status");
    status.textContent = text;
    status.className = "status" + (isError ? " error" : "");
  }

  // --- start ----------------------------------------------------------------------------------

  function onEnter(inputId, action) {
    byId(inputId).addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        action();
      }
    });
  }

  function start() {
    byId("time-zone").textContent = state.timeZone;
    showSteps();
    showKeys();
    byId("save-read-key").addEventListener("click", function () { takeKey("read"); });
    byId("save-admin-key").addEventListener("click", function () { takeKey("admin"); });
    onEnter("read-key", function () { takeKey("read"); });
    onEnter("admin-key", function () { takeKey("admin"); });
    byId("forget-keys").addEventListener("click", forgetKeys);
    byId("range").addEventListener("change", function () { showSteps(); load(); });
    byId("step").addEventListener("change", load);
    byId("refresh").addEventListener("click", load);
    byId("find-event").addEventListener("click", findEvent);
    byId("find-session").addEventListener("click", findSession);
    onEnter("event-id", findEvent);
    onEnter("session-id", findSession);
    if (!window.Chart) {
      showStatus("The chart library did not load: reload the page.", true);
      return;
    }
    state.ready = true;
    load(); // a key kept by this tab (a reload) is used at once
  }

  start();
})();
