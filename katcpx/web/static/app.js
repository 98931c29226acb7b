// katcpx-web dashboard: plain JavaScript, no build step, no external resources.
// Listing comes from the REST API; live values, device states and request calls go over
// the websocket. Only the sensors shown (those matching the filter, at most MAX_ROWS) and
// the plotted one are subscribed, so a big site does not flood the browser.
"use strict";

(function () {
  const MAX_ROWS = 500;
  const MAX_POINTS = 5000;

  const devices = new Map(); // name -> device message
  const sensors = new Map(); // "device/sensor" -> sensor info (+ row element)
  const requests = new Map(); // device -> [request info]
  const subscribed = new Set(); // keys subscribed on the current socket
  const pendingCalls = new Map(); // message id -> result <pre>
  const plot = { key: "", points: [], dirty: true, history: 0 };
  let ws = null;
  let nextId = 1;
  let retryDelay = 500;
  let filterTimer = null;

  const $ = (sel) => document.querySelector(sel);
  const keyOf = (device, sensor) => device + "/" + sensor;
  const apiPath = (...parts) => "/api/" + parts.map(encodeURIComponent).join("/");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c);
    return node;
  }

  async function getJSON(path) {
    const resp = await fetch(path, { cache: "no-store" });
    if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
    return resp.json();
  }

  // -- websocket ------------------------------------------------------------------------

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  // A guarded bridge (katcpx-web --token-file) needs its token before a request form is
  // used: asked for once, kept for this tab, and sent as the socket's auth message.
  let control = "open";
  let token = sessionStorage.getItem("katcpx-web-token");

  function authorize() {
    if (control === "read-only") return "this bridge is read-only";
    if (control !== "token") return null;
    if (!token) {
      token = window.prompt("This bridge needs a token to change devices:");
      if (!token) return "no token given";
      sessionStorage.setItem("katcpx-web-token", token);
    }
    send({ action: "auth", token });
    return null;
  }

  function setWsState(state, text) {
    const badge = $("#ws-state");
    badge.className = "badge state-" + state;
    badge.textContent = text;
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/api/ws");
    setWsState("syncing", "connecting");
    ws.onopen = () => {
      retryDelay = 500;
      setWsState("synced", "live");
      renderEmpty();
    };
    ws.onclose = () => {
      setWsState("disconnected", "offline: retrying");
      subscribed.clear();
      renderEmpty();
      for (const [id, pre] of pendingCalls) showResult(pre, false, "connection lost");
      pendingCalls.clear();
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handle(msg);
    };
  }

  function handle(msg) {
    switch (msg.type) {
      case "hello":
        $("#server-info").textContent = msg.server + " · strategy " + msg.strategy.join(" ");
        control = msg.control || "open";
        devices.clear();
        for (const d of msg.devices) devices.set(d.device, d);
        renderDevices();
        renderRequestDevices();
        for (const d of msg.devices) if (d.synced) loadDevice(d.device);
        break;
      case "device":
        // "removed": the katcpx-gateway no longer carries it (katcpx-web --redis).
        if (msg.state === "removed") devices.delete(msg.device);
        else devices.set(msg.device, msg);
        renderDevices();
        renderRequestDevices();
        if (msg.synced) loadDevice(msg.device);
        else markDevice(msg.device);
        break;
      case "meta": {
        const s = sensors.get(keyOf(msg.device, msg.sensor));
        if (s) Object.assign(s, { type: msg.sensor_type, units: msg.units, description: msg.description, params: msg.params, numeric: msg.numeric });
        break;
      }
      case "update":
        onUpdate(msg);
        break;
      case "set": {
        const pre = pendingCalls.get(msg.id);
        pendingCalls.delete(msg.id);
        if (pre) {
          const lines = [msg.status + (msg.reply.length ? " " + msg.reply.join(" ") : "")];
          for (const inf of msg.informs) lines.push("#" + msg.request + " " + inf.join(" "));
          lines.push("(" + (msg.elapsed * 1000).toFixed(0) + " ms)");
          showResult(pre, msg.ok, lines.join("\n"));
        }
        break;
      }
      case "error": {
        if (msg.code === "unauthorized") {
          token = null; // asked again on the next use of a request form
          sessionStorage.removeItem("katcpx-web-token");
        }
        const pre = pendingCalls.get(msg.id);
        if (pre) {
          pendingCalls.delete(msg.id);
          showResult(pre, false, "error: " + msg.error);
        } else {
          console.warn("katcpx-web:", msg.error);
        }
        break;
      }
      default:
        break; // subscribe/unsubscribe/refresh summaries need no action here
    }
  }

  // -- devices --------------------------------------------------------------------------

  // -- empty states: say why a panel is empty and what to do ---------------------------

  function showEmpty(id, text) {
    const p = $(id);
    p.textContent = text || "";
    p.hidden = !text;
  }

  function renderEmpty() {
    const all = [...devices.values()];
    const up = all.filter((d) => d.synced);
    const down = all.filter((d) => !d.synced);
    const downText = down.map((d) => d.device + " at " + d.address + " (" + d.state + ")").join(", ");
    const wsDown = !ws || ws.readyState !== WebSocket.OPEN;
    let devicesText = "";
    if (wsDown) {
      devicesText = "Not connected to katcpx-web itself: is it still running? This page reconnects on its own.";
    } else if (!all.length) {
      devicesText = "katcpx-web has no devices: start it with name=host:port arguments or --config.";
    } else if (!up.length) {
      devicesText = "No device is connected (" + downText + "). katcpx-web keeps trying: " +
        "start the devices (for the simulated site: katcpx-sim site) or check the addresses given to katcpx-web.";
    } else if (down.length) {
      devicesText = "Not connected: " + downText + "; their sensors are greyed out.";
    }
    showEmpty("#devices-empty", devicesText);
    let sensorsText = "";
    if (!sensors.size) {
      sensorsText = wsDown || !up.length
        ? "No sensors to show: no device is connected (see Devices above)."
        : "The connected devices have no sensors.";
    } else if (!$("#sensors tbody").children.length) {
      sensorsText = "No sensor matches the filter “" + $("#sensor-filter").value.trim() + "”: change or clear it.";
    }
    showEmpty("#sensors-empty", sensorsText);
    showEmpty("#requests-empty", requests.size ? "" : "No requests to show: no device is connected yet.");
  }

  function renderDevices() {
    const list = $("#devices");
    list.replaceChildren();
    for (const d of devices.values()) {
      list.append(
        el("li", { "data-device": d.device },
          el("span", { class: "name", text: d.device + " " }),
          el("span", { class: "badge state-" + d.state, text: d.state }),
          d.error ? el("span", { class: "reason", text: " " + d.error + " " }) : "",
          el("span", { class: "addr muted", text: d.address + (d.description ? " · " + d.description : "") }),
          el("span", { class: "muted", text: d.sensors + " sensors · " + d.requests + " requests" }))
      );
    }
    renderEmpty();
  }

  async function loadDevice(name) {
    try {
      const [list, reqs] = await Promise.all([
        getJSON(apiPath("devices", name, "sensors")),
        getJSON(apiPath("devices", name, "requests")),
      ]);
      const seen = new Set();
      for (const info of list) {
        const key = keyOf(name, info.name);
        seen.add(key);
        const old = sensors.get(key);
        if (old) {
          Object.assign(old, { type: info.type, units: info.units, description: info.description, params: info.params, numeric: info.numeric });
        } else {
          sensors.set(key, Object.assign(info, { row: null, stale: info.stale === true }));
        }
      }
      for (const key of [...sensors.keys()]) {
        if (key.startsWith(name + "/") && !seen.has(key)) sensors.delete(key);
      }
      for (const info of list) sensors.get(keyOf(name, info.name)).stale = info.stale === true;
      requests.set(name, reqs);
      renderPlotChoices();
      applyFilter(true);
      if ($("#request-device").value === name || !$("#request-device").value) renderRequests();
    } catch (e) {
      console.warn("katcpx-web: loading", name, e);
    }
  }

  function markDevice(name) {
    for (const [key, s] of sensors) {
      if (s.device === name) {
        s.stale = true;
        if (s.row) s.row.classList.add("stale");
      }
    }
    // The server forgets a socket's pending subscriptions only when it closes; ours stay.
  }

  // -- sensor table ---------------------------------------------------------------------

  function compileFilter(text) {
    if (!text) return () => true;
    try {
      const re = new RegExp(text, "i");
      return (s) => re.test(s.device + " " + s.name);
    } catch (e) {
      const lower = text.toLowerCase();
      return (s) => (s.device + " " + s.name).toLowerCase().includes(lower);
    }
  }

  function applyFilter(force) {
    const match = compileFilter($("#sensor-filter").value.trim());
    const shown = [];
    let total = 0;
    for (const [key, s] of sensors) {
      if (!match(s)) continue;
      total += 1;
      if (shown.length < MAX_ROWS) shown.push(key);
    }
    shown.sort();
    $("#sensor-count").textContent =
      total > shown.length ? "showing " + shown.length + " of " + total + ": refine the filter" : total + " sensors";
    const body = $("#sensors tbody");
    const rows = shown.map((key) => rowFor(key));
    body.replaceChildren(...rows);
    for (const key of shown) paint(sensors.get(key));
    const wanted = new Set(shown);
    if (plot.key) wanted.add(plot.key);
    resubscribe(wanted);
    applyProblemsOnly();
    renderEmpty();
  }

  function applyProblemsOnly() {
    const only = $("#problems-only").checked;
    for (const row of $("#sensors tbody").children) {
      const s = sensors.get(row.dataset.key);
      row.hidden = only && s && s.status === "nominal";
    }
  }

  function resubscribe(wanted) {
    const add = new Map();
    const drop = new Map();
    for (const key of wanted) {
      if (subscribed.has(key)) continue;
      const s = sensors.get(key);
      if (!s) continue;
      if (!add.has(s.device)) add.set(s.device, []);
      add.get(s.device).push(s.name);
      subscribed.add(key);
    }
    for (const key of [...subscribed]) {
      if (wanted.has(key)) continue;
      const slash = key.indexOf("/");
      const device = key.slice(0, slash);
      if (!drop.has(device)) drop.set(device, []);
      drop.get(device).push(key.slice(slash + 1));
      subscribed.delete(key);
    }
    for (const [device, names] of drop) send({ action: "unsubscribe", device, sensors: names });
    for (const [device, names] of add) send({ action: "subscribe", device, sensors: names });
  }

  function rowFor(key) {
    const s = sensors.get(key);
    if (!s.row) {
      const row = el("tr", { "data-key": key, "data-device": s.device, "data-sensor": s.name },
        el("td", { class: "device", text: s.device }),
        el("td", { class: "name", text: s.name, title: s.description }),
        el("td", { class: "value" }),
        el("td", { class: "units", text: s.units }),
        el("td", { class: "status" }),
        el("td", { class: "age" }));
      row.addEventListener("click", () => choosePlot(key));
      s.row = row;
    }
    s.row.classList.toggle("selected", key === plot.key);
    return s.row;
  }

  function formatValue(s) {
    const v = s.value;
    if (v === null || v === undefined) return "";
    if (typeof v === "number" && s.type === "float") return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(4) : String(+v.toFixed(6));
    if (s.type === "timestamp" && typeof v === "number") return new Date(v * 1000).toISOString().replace("T", " ").replace("Z", "");
    if (Array.isArray(v)) return v.join(":");
    return String(v);
  }

  function formatAge(s) {
    if (!s.timestamp) return "";
    const age = Date.now() / 1000 - s.timestamp;
    if (age < 1) return "now";
    if (age < 120) return age.toFixed(0) + " s";
    if (age < 7200) return (age / 60).toFixed(0) + " min";
    return (age / 3600).toFixed(1) + " h";
  }

  function paint(s) {
    const row = s.row;
    if (!row) return;
    const cells = row.children;
    cells[2].textContent = formatValue(s);
    cells[2].title = String(s.value);
    cells[3].textContent = s.units;
    cells[4].textContent = s.status || "";
    // A cached reading that is not kept current says so (the server's "stale").
    cells[5].textContent = formatAge(s) + (s.stale && s.timestamp ? " (stale)" : "");
    cells[5].title = s.stale ? "last known reading: not live" : "";
    row.className = "status-" + (s.status || "unknown") + (s.stale ? " stale" : "") + (row.dataset.key === plot.key ? " selected" : "");
  }

  function onUpdate(msg) {
    const key = keyOf(msg.device, msg.sensor);
    const s = sensors.get(key);
    if (!s) return;
    s.value = msg.value;
    s.status = msg.status;
    s.timestamp = msg.timestamp;
    s.stale = !msg.connected || msg.stale === true;
    paint(s);
    if ($("#problems-only").checked && s.row) s.row.hidden = s.status === "nominal";
    if (key === plot.key) addPoint(s);
  }

  // -- plot -----------------------------------------------------------------------------

  const plottable = (s) => s.numeric || s.type === "boolean";

  function renderPlotChoices() {
    const select = $("#plot-sensor");
    const current = select.value;
    const options = [el("option", { value: "", text: "(choose a numeric sensor, or click a row)" })];
    for (const key of [...sensors.keys()].sort()) {
      if (plottable(sensors.get(key))) options.push(el("option", { value: key, text: key }));
    }
    select.replaceChildren(...options);
    select.value = sensors.has(current) ? current : "";
  }

  function choosePlot(key) {
    const s = sensors.get(key);
    if (key && (!s || !plottable(s))) return;
    plot.key = key;
    plot.points = [];
    $("#plot-sensor").value = key;
    for (const other of sensors.values()) if (other.row) other.row.classList.toggle("selected", other.row.dataset.key === key);
    if (s && s.timestamp) addPoint(s);
    applyFilter(false);
    plot.dirty = true;
    if (key) loadHistory(key);
  }

  // The plot starts with the sensor's recent history (ring buffer, or Redis streams with
  // --redis), so it is not empty on open; live points already received are kept after it.
  function loadHistory(key) {
    const cut = key.indexOf("/");
    const span = Number($("#plot-window").value) || 300;
    const query = "?since=" + (Date.now() / 1000 - span) + "&limit=" + MAX_POINTS;
    fetch(apiPath("devices", key.slice(0, cut), "sensors", key.slice(cut + 1), "history") + query)
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (!body || plot.key !== key) return;
        const first = plot.points.length ? plot.points[0][0] : Infinity;
        const earlier = [];
        for (const r of body.readings) {
          let v = r.value;
          if (typeof v === "boolean") v = v ? 1 : 0;
          v = Number(v);
          if (Number.isFinite(v) && r.timestamp < first) earlier.push([r.timestamp, v]);
        }
        plot.points = earlier.concat(plot.points).slice(-MAX_POINTS);
        plot.history = earlier.length;
        plot.dirty = true;
      })
      .catch(() => {}); // no history: the plot fills with live points as before
  }

  function addPoint(s) {
    let v = s.value;
    if (typeof v === "boolean") v = v ? 1 : 0;
    v = Number(v);
    if (!Number.isFinite(v)) return;
    const t = s.timestamp || Date.now() / 1000;
    const pts = plot.points;
    if (pts.length && pts[pts.length - 1][0] === t && pts[pts.length - 1][1] === v) return;
    pts.push([t, v]);
    if (pts.length > MAX_POINTS) pts.splice(0, pts.length - MAX_POINTS);
    $("#plot-value").textContent = formatValue(s) + (s.units ? " " + s.units : "") + " · " + pts.length + " points";
    plot.dirty = true;
  }

  function niceTicks(lo, hi, n) {
    const span = hi - lo || 1;
    const step0 = span / n;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }

  function drawPlot() {
    const canvas = $("#plot");
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width;
    const h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    const left = 58, right = 10, top = 10, bottom = 24;
    const pw = w - left - right, ph = h - top - bottom;
    const now = Date.now() / 1000;
    const span = Number($("#plot-window").value);
    const t0 = now - span;
    const pts = plot.points.filter((p) => p[0] >= t0 - span * 0.05);
    ctx.strokeStyle = "#dde1e7";
    ctx.strokeRect(left, top, pw, ph);
    if (!plot.key) {
      ctx.fillStyle = "#6b7280";
      ctx.fillText("choose a numeric sensor to plot", left + 10, top + 20);
      return;
    }
    // Keep the last point before the window so the line enters from the left edge.
    const before = plot.points.filter((p) => p[0] < t0);
    if (before.length) pts.unshift(before[before.length - 1]);
    let lo = Infinity, hi = -Infinity;
    for (const p of pts) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const pad = (hi - lo) * 0.08;
    lo -= pad; hi += pad;
    const x = (t) => left + ((t - t0) / span) * pw;
    const y = (v) => top + ph - ((v - lo) / (hi - lo)) * ph;
    ctx.fillStyle = "#6b7280";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of niceTicks(lo, hi, 5)) {
      ctx.strokeStyle = "#eef0f3";
      ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(left + pw, y(v)); ctx.stroke();
      ctx.fillText(Math.abs(v) >= 1e5 ? v.toExponential(1) : String(v), left - 4, y(v));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const dt of niceTicks(0, span, 4)) {
      const tx = x(now - dt);
      ctx.fillText(dt === 0 ? "now" : "-" + dt + " s", tx, top + ph + 6);
    }
    ctx.save();
    ctx.beginPath(); ctx.rect(left, top, pw, ph); ctx.clip();
    ctx.strokeStyle = "#2563eb";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    // Sensor values hold until the next change: draw steps, extended to now.
    pts.forEach((p, i) => {
      if (i === 0) ctx.moveTo(x(p[0]), y(p[1]));
      else { ctx.lineTo(x(p[0]), y(pts[i - 1][1])); ctx.lineTo(x(p[0]), y(p[1])); }
    });
    if (pts.length) ctx.lineTo(x(now), y(pts[pts.length - 1][1]));
    ctx.stroke();
    ctx.fillStyle = "#2563eb";
    for (const p of pts.slice(-200)) { ctx.beginPath(); ctx.arc(x(p[0]), y(p[1]), 2, 0, 2 * Math.PI); ctx.fill(); }
    ctx.restore();
    ctx.fillStyle = "#1d2330";
    ctx.textAlign = "left";
    ctx.fillText(plot.key, left + 6, top + 4);
  }

  // -- requests -------------------------------------------------------------------------

  function renderRequestDevices() {
    const select = $("#request-device");
    const current = select.value;
    select.replaceChildren(...[...devices.keys()].map((d) => el("option", { value: d, text: d })));
    if (devices.has(current)) select.value = current;
  }

  function splitArgs(text) {
    // Space separated, with "double" or 'single' quotes around arguments holding spaces.
    const out = [];
    const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
    let m;
    while ((m = re.exec(text))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2] !== undefined ? m[2] : m[3]);
    return out;
  }

  function renderRequests() {
    const device = $("#request-device").value;
    const filter = $("#request-filter").value.trim().toLowerCase();
    const box = $("#requests");
    const list = (requests.get(device) || []).filter((r) => !filter || r.name.toLowerCase().includes(filter));
    const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.request));
    box.replaceChildren(...list.map((r) => requestForm(device, r, open.has(r.name))));
  }

  function requestForm(device, r, isOpen) {
    const form = el("form", { "data-request": r.name, "data-device": device });
    form.append(el("pre", { class: "help", text: r.description }));
    if (r.parameters.length) {
      for (const p of r.parameters) {
        form.append(
          el("label", { text: p.name + (p.optional ? " (optional)" : ""), htmlFor: "arg-" + r.name + "-" + p.name }),
          el("input", { name: p.name, id: "arg-" + r.name + "-" + p.name, placeholder: p.type, title: p.description, "data-optional": p.optional ? "1" : "" }));
      }
    } else {
      form.append(
        el("label", { text: "arguments", htmlFor: "args-" + r.name }),
        el("input", { name: "__args", id: "args-" + r.name, placeholder: "space separated; quote to keep spaces" }));
    }
    form.append(
      el("label", { text: "timeout (s)" }),
      el("input", { name: "__timeout", type: "number", min: "0", step: "any", placeholder: r.timeout_hint ? String(r.timeout_hint) : "default" }),
      el("button", { type: "submit", text: "Send ?" + r.name }),
      el("span"),
      el("pre", { class: "result" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      let args = [];
      const free = form.elements.namedItem("__args");
      if (free) {
        args = splitArgs(free.value);
      } else {
        for (const p of r.parameters) args.push(form.elements.namedItem(p.name).value);
        while (args.length && args[args.length - 1] === "") args.pop(); // omitted optional ones
      }
      const timeout = parseFloat(form.elements.namedItem("__timeout").value);
      const id = "req-" + nextId++;
      const pre = form.querySelector(".result");
      const refused = authorize();
      if (refused) {
        showResult(pre, false, "error: " + refused);
        return;
      }
      pendingCalls.set(id, pre);
      showResult(pre, null, "?" + r.name + " " + args.join(" ") + " …");
      const msg = { action: "set", id, device, request: r.name, args };
      if (timeout > 0) msg.timeout = timeout;
      send(msg);
    });
    const details = el("details", { class: "request", "data-request": r.name },
      el("summary", {}, el("span", { class: "rname", text: r.name }), el("span", { class: "muted", text: " " + r.summary })),
      form);
    details.open = isOpen;
    return details;
  }

  function showResult(pre, ok, text) {
    pre.className = "result " + (ok === null ? "busy" : ok ? "ok" : "fail");
    pre.textContent = text;
  }

  // -- wiring ---------------------------------------------------------------------------

  $("#sensor-filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => applyFilter(false), 150);
  });
  $("#problems-only").addEventListener("change", applyProblemsOnly);
  $("#plot-sensor").addEventListener("change", (e) => choosePlot(e.target.value));
  $("#plot-window").addEventListener("change", () => { plot.dirty = true; });
  $("#request-device").addEventListener("change", renderRequests);
  $("#request-filter").addEventListener("input", renderRequests);

  let lastDraw = 0;
  function frame(ts) {
    // Redraw on new data, and twice a second anyway so the time axis scrolls.
    if (plot.dirty || ts - lastDraw > 500) {
      drawPlot();
      plot.dirty = false;
      lastDraw = ts;
    }
    requestAnimationFrame(frame);
  }
  requestAnimationFrame(frame);
  setInterval(() => {
    for (const row of $("#sensors tbody").children) {
      const s = sensors.get(row.dataset.key);
      if (s) row.children[5].textContent = formatAge(s);
    }
  }, 1000);

  // For tests and the curious: the live state, read-only by convention.
  window.katcpxDashboard = { devices, sensors, requests, subscribed, plot };
  connect();
})();
