/* perfmesh web dashboard: fleet overview and host pages, live over server-sent events.
   Every piece of data from the network is inserted with textContent, never as HTML. */
"use strict";
(function () {
  const body = document.body;
  const PAGE = body.dataset.page, HOST = body.dataset.host, COMMANDS = body.dataset.commands === "on";
  /* this page's token: the server takes commands only from a page it served */
  const TOKEN = document.querySelector("meta[name=perfmesh-token]").content;
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#38bdf8", "#a78bfa", "#f472b6", "#fbbf24", "#34d399", "#fb923c", "#60a5fa", "#e879f9",
                  "#4ade80", "#f87171", "#22d3ee", "#facc15"];
  const LIVE_WINDOW_S = 300;
  const state = { connected: false, sseOk: false, received: 0, charts: new Map(), windowS: LIVE_WINDOW_S, range: "live" };
  window.perfmesh = state;

  function h(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clock(ts) { return typeof ts === "number" ? new Date(ts * 1000).toLocaleTimeString() : "–"; }
  function level(v, warn, crit) { return v === null || v === undefined ? "none" : v >= crit ? "crit" : v >= warn ? "warn" : "ok"; }
  function rate(v) { return fmtValue(v, "B/s"); }

  function setConn() {
    const c = $("conn"), banner = $("banner");
    if (!state.sseOk) {
      c.textContent = "reconnecting…"; c.className = "conn bad";
      banner.textContent = "Lost the dashboard server; retrying…"; banner.classList.remove("hidden");
    } else if (!state.connected) {
      c.textContent = "aggregator unreachable"; c.className = "conn bad";
      banner.textContent = "The aggregator (" + c.title.replace("aggregator ", "") + ") does not answer; showing the last data while reconnecting…";
      banner.classList.remove("hidden");
    } else {
      c.textContent = "live"; c.className = "conn ok"; banner.classList.add("hidden");
    }
  }

  function summary(hosts) {
    const down = hosts.filter((x) => !x.alive).length;
    const alerts = hosts.reduce((n, x) => n + x.violations.length, 0);
    const s = $("summary");
    s.textContent = "";
    s.append(h("span", "", hosts.length + (hosts.length === 1 ? " host" : " hosts")));
    if (down) s.append(h("span", "bad", down + " down"));
    if (alerts) s.append(h("span", "warn", alerts + (alerts === 1 ? " violation" : " violations")));
  }

  /* ------------------------------------------------------------------ fleet page */
  const cards = new Map();

  function meter(label) {
    const row = h("div", "meter");
    const name = h("span", "meter-label", label);
    const track = h("span", "track"); const fill = h("span", "fill"); track.append(fill);
    const val = h("span", "meter-value", "–");
    row.append(name, track, val);
    return { row, fill, val };
  }

  function makeCard(name) {
    const a = h("a", "card"); a.href = "/host/" + encodeURIComponent(name); a.dataset.host = name;
    const head = h("div", "card-head");
    const dot = h("span", "dot"); const title = h("span", "card-name", name);
    const health = h("span", "pill"); const alerts = h("span", "badge hidden");
    head.append(dot, title, health, alerts);
    const cpu = meter("CPU"), mem = meter("MEM"), swap = meter("SWAP");
    const spark = h("canvas", "spark"); spark.setAttribute("aria-label", "CPU history");
    const facts = h("div", "facts");
    const load = h("span"), disk = h("span"), net = h("span");
    facts.append(load, disk, net);
    a.append(head, cpu.row, mem.row, swap.row, spark, facts);
    const card = { a, dot, health, alerts, cpu, mem, swap, spark, load, disk, net };
    cards.set(name, card);
    return card;
  }

  function setMeter(m, v, warn, crit) {
    const lv = level(v, warn, crit);
    m.fill.style.width = (v === null ? 0 : Math.min(Math.max(v, 0), 100)) + "%";
    m.fill.className = "fill " + lv;
    m.val.textContent = v === null ? "–" : v.toFixed(0) + "%";
  }

  function fact(el, label, value) { el.textContent = ""; el.append(h("em", "", label), document.createTextNode(" " + value)); }

  function sortRows(rows, key) {
    const rank = { critical: 0, warning: 1, good: 2 };
    const disk = (r) => (r.disk_read === null && r.disk_write === null ? null : (r.disk_read || 0) + (r.disk_write || 0));
    const net = (r) => (r.net_recv === null && r.net_sent === null ? null : (r.net_recv || 0) + (r.net_sent || 0));
    const val = { cpu: (r) => r.cpu, memory: (r) => r.memory, load: (r) => r.load, disk, net };
    rows.sort((a, b) => a.name.localeCompare(b.name));
    if (key === "health") rows.sort((a, b) => (a.alive - b.alive) || ((rank[a.health] ?? 3) - (rank[b.health] ?? 3)));
    else if (val[key]) rows.sort((a, b) => { const x = val[key](a), y = val[key](b); return (y ?? -Infinity) - (x ?? -Infinity); });
    return rows;
  }

  function renderFleet(data) {
    state.connected = data.connected; setConn();
    summary(data.hosts);
    if (PAGE !== "fleet") return;
    const filter = $("filter").value.trim().toLowerCase();
    const rows = sortRows(data.hosts.filter((r) => r.name.toLowerCase().includes(filter)), $("sort").value);
    const list = $("hosts");
    $("empty").classList.toggle("hidden", data.hosts.length > 0);
    rows.forEach((r, i) => {
      const c = cards.get(r.name) || makeCard(r.name);
      c.a.classList.toggle("down", !r.alive);
      c.dot.className = "dot " + (r.alive ? r.health : "down");
      c.health.textContent = r.alive ? r.health : "down";
      c.health.className = "pill " + (r.alive ? r.health : "down");
      c.alerts.textContent = r.violations.length ? "⚠ " + r.violations.join(", ") : "";
      c.alerts.classList.toggle("hidden", !r.violations.length);
      setMeter(c.cpu, r.cpu, 70, 90); setMeter(c.mem, r.memory, 80, 95); setMeter(c.swap, r.swap, 20, 60);
      fact(c.load, "load", r.load === null ? "–" : r.load.toFixed(2) + (r.cpu_count ? " / " + r.cpu_count + " CPU" : ""));
      fact(c.disk, "disk", "↓" + rate(r.disk_read) + " ↑" + rate(r.disk_write));
      fact(c.net, "net", "↓" + rate(r.net_recv) + " ↑" + rate(r.net_sent));
      if (list.children[i] !== c.a) list.insertBefore(c.a, list.children[i] || null);
      drawSparkline(c.spark, r.cpu_history, 100, "#38bdf8");
      state.received += r.cpu_history.length ? 1 : 0;
    });
    const shown = new Set(rows.map((r) => r.name));
    for (const [name, c] of cards) if (!shown.has(name) && c.a.parentNode) c.a.remove();
    list.dataset.hosts = String(rows.length);
  }

  /* ------------------------------------------------------------------ host page */
  const GROUPS = [
    { id: "cpu", title: "CPU", unit: "%", max: 100, keys: [["cpu_percent", "total"], ["cpu_user_percent", "user"], ["cpu_system_percent", "system"], ["cpu_iowait_percent", "iowait"]] },
    { id: "percpu", title: "Per CPU", unit: "%", max: 100, match: /^cpu_percent\{cpu=(.+)\}$/ },
    { id: "mem", title: "Memory and swap", unit: "%", max: 100, keys: [["memory_percent", "memory"], ["swap_percent", "swap"]] },
    { id: "load", title: "Load average", unit: "", max: null, keys: [["load_1m", "1 min"], ["load_5m", "5 min"], ["load_15m", "15 min"]] },
    { id: "disk", title: "Disk I/O", unit: "B/s", max: null, keys: [["disk_read_bytes_per_s", "read"], ["disk_write_bytes_per_s", "write"]] },
    { id: "net", title: "Network", unit: "B/s", max: null, keys: [["net_recv_bytes_per_s", "received"], ["net_sent_bytes_per_s", "sent"]] },
  ];
  const GROUPED = new Set(GROUPS.flatMap((g) => (g.keys || []).map((k) => k[0])));
  const groupCharts = new Map();

  function chartFor(group) {
    let c = groupCharts.get(group.id);
    if (!c) {
      c = new LineChart($("charts"), { title: group.title, unit: group.unit, max: group.max, windowS: state.windowS,
        series: (group.keys || []).map((k, i) => ({ key: k[0], label: k[1], color: COLORS[i] })) });
      c.el.dataset.group = group.id;
      groupCharts.set(group.id, c);
    }
    return c;
  }

  function extraChart(key, unit) {
    let c = state.charts.get(key);
    if (!c) {
      let box = $("more");
      if (!box) {
        const det = h("details", "more"); det.append(h("summary", "", "All other series"));
        box = h("div", "charts small"); box.id = "more"; det.append(box); $("main").querySelector("#host-page").append(det);
        det.addEventListener("toggle", () => { for (const x of state.charts.values()) x.schedule(); });
      }
      c = new LineChart(box, { title: key, unit, max: unit === "%" ? 100 : null, windowS: state.windowS, height: 90,
        series: [{ key, label: "", color: COLORS[state.charts.size % COLORS.length] }] });
      state.charts.set(key, c);
    }
    return c;
  }

  function route(key, unit) {
    for (const g of GROUPS) {
      if (g.keys && g.keys.some((k) => k[0] === key)) return chartFor(g);
      if (g.match) {
        const m = key.match(g.match);
        if (m) {
          const c = chartFor(g);
          if (!c.has(key)) c.addSeries({ key, label: "cpu" + m[1], color: COLORS[c.series.length % COLORS.length] });
          return c;
        }
      }
    }
    if (key.includes("{") || GROUPED.has(key)) return null;
    return extraChart(key, unit);
  }

  function stat(label, value, cls) {
    const d = h("div", "stat " + (cls || "")); d.append(h("span", "stat-label", label), h("span", "stat-value", value));
    return d;
  }

  function renderHost(d) {
    state.connected = d.connected; setConn();
    $("h-name").textContent = d.name;
    $("h-dot").className = "dot " + (d.alive ? d.health : "down");
    $("h-health").textContent = d.alive ? d.health : "down";
    $("h-health").className = "pill " + (d.alive ? d.health : "down");
    const info = d.info || {};
    const bits = [];
    if (info.cpu_count) bits.push(info.cpu_count + " CPUs");
    if (info.memory_total_bytes) bits.push(fmtValue(info.memory_total_bytes, "B") + " RAM");
    if (info.platform) bits.push(info.platform);
    $("h-info").textContent = bits.join(" · ");
    const r = d.row;
    const stats = $("stats"); stats.textContent = "";
    stats.append(stat("CPU", r.cpu === null ? "–" : r.cpu.toFixed(0) + "%", level(r.cpu, 70, 90)),
      stat("Memory", r.memory === null ? "–" : r.memory.toFixed(0) + "%", level(r.memory, 80, 95)),
      stat("Swap", r.swap === null ? "–" : r.swap.toFixed(0) + "%", level(r.swap, 20, 60)),
      stat("Load", r.load === null ? "–" : r.load.toFixed(2)),
      stat("Disk", "↓" + rate(r.disk_read) + " ↑" + rate(r.disk_write)),
      stat("Network", "↓" + rate(r.net_recv) + " ↑" + rate(r.net_sent)),
      stat("Violations", String(d.active_violations.length), d.active_violations.length ? "crit" : "ok"));
    const keys = Object.keys(d.series);
    for (const g of GROUPS) {   // the main charts in a fixed order, whichever series arrives first
      if (!groupCharts.has(g.id) && keys.some((k) => (g.keys ? g.keys.some((x) => x[0] === k) : g.match.test(k)))) chartFor(g);
    }
    for (const [key, s] of Object.entries(d.series)) {
      const c = route(key, s.unit);
      if (c) state.received += c.push(key, s.points);
    }
    if (!state.seeded) {   // the stream has the last moments; history fills the rest of the window
      state.seeded = true;
      loadRange(state.windowS).catch(() => {});
    }
    document.body.dataset.received = String(state.received);
    fillTable($("commands"), d.commands, (c) => [clock(c.timestamp), c.strategy, c.status + (c.error ? ": " + c.error : ""), c.operator || ""],
      (c) => (c.status === "success" ? "ok" : "crit"));
    $("no-commands").classList.toggle("hidden", d.commands.length > 0);
    const ul = $("bottlenecks"); ul.textContent = "";
    for (const b of d.bottlenecks) ul.append(h("li", b.severity === "critical" ? "crit" : "warn",
      (b.description || b.kind) + (b.recommended_strategy ? " — try " + b.recommended_strategy : "")));
    if (!d.bottlenecks.length) ul.append(h("li", "muted", "None detected."));
    fillTable($("disks"), d.disks, (x) => [x.device, rate(x.read_bytes_per_s), rate(x.write_bytes_per_s),
      x.busy_percent === undefined ? "–" : x.busy_percent.toFixed(0) + "%"]);
    fillTable($("nics"), d.interfaces, (x) => [x.interface, rate(x.recv_bytes_per_s), rate(x.sent_bytes_per_s)]);
    const sel = $("strategy");
    if (COMMANDS && sel.options.length === 0 && Array.isArray(info.strategies)) {
      for (const s of info.strategies) { const o = h("option", "", s); o.value = s; sel.append(o); }
    }
  }

  function fillTable(tbody, items, cells, cls) {
    tbody.textContent = "";
    for (const it of items) {
      const tr = h("tr", cls ? cls(it) : "");
      cells(it).forEach((text, i) => tr.append(h("td", i > 0 && /^[–↓\d]/.test(String(text)) ? "num" : "", text)));
      tbody.append(tr);
    }
  }

  function duration(s) {
    if (typeof s !== "number") return "–";
    const r = Math.round(s);
    return r < 60 ? r + "s" : r < 3600 ? Math.floor(r / 60) + "m" + String(r % 60).padStart(2, "0") + "s"
      : Math.floor(r / 3600) + "h" + String(Math.floor((r % 3600) / 60)).padStart(2, "0") + "m";
  }

  /* The host's alert log from the aggregator's store: one row per alert, newest first. */
  async function loadAlerts() {
    const res = await fetch("/api/alerts?host=" + encodeURIComponent(HOST));
    if (!res.ok) return;
    const alerts = (await res.json()).alerts;
    fillTable($("violations"), alerts, (a) => [clock(a.fired), "#" + a.id, a.severity, a.metric, fmtValue(a.value, ""),
      fmtValue(a.limit, ""), duration(a.duration_s) + (a.active ? " (active)" : ""), a.acked_by || ""],
      (a) => (!a.active ? "ok" : a.severity === "critical" ? "crit" : "warn"));
    $("no-violations").classList.toggle("hidden", alerts.length > 0);
    document.body.dataset.alerts = String(alerts.length);
  }

  async function loadRange(seconds) {
    const all = [...groupCharts.values(), ...state.charts.values()];
    for (const c of all) c.setWindow(seconds);
    await Promise.all(all.flatMap((c) => c.series.map(async (s) => {
      const url = "/api/history?host=" + encodeURIComponent(HOST) + "&key=" + encodeURIComponent(s.key) + "&since_s=" + seconds;
      const res = await fetch(url);
      if (res.ok) c.set(s.key, (await res.json()).points);
    })));
  }

  function setupHost() {
    $("host-page").classList.remove("hidden");
    const crumbs = $("crumbs");
    const a = h("a", "", "Fleet"); a.href = "/";
    crumbs.append(a, h("span", "sep", "/"), h("span", "", HOST));
    $("range").addEventListener("click", (e) => {
      const b = e.target.closest("button"); if (!b) return;
      for (const x of $("range").children) x.classList.toggle("on", x === b);
      state.range = b.dataset.range;
      state.windowS = b.dataset.range === "live" ? LIVE_WINDOW_S : Number(b.dataset.range);
      if (b.dataset.range === "live") { for (const c of [...groupCharts.values(), ...state.charts.values()]) c.setWindow(LIVE_WINDOW_S); }
      else loadRange(state.windowS).catch((err) => showResult("history unavailable: " + err, "crit"));
    });
    if (COMMANDS) {
      $("command-form").classList.remove("hidden");
      $("command-off").classList.add("hidden");
      $("command-form").addEventListener("submit", sendCommand);
    }
    window.addEventListener("resize", () => { for (const c of [...groupCharts.values(), ...state.charts.values()]) c.schedule(); });
    loadAlerts().catch(() => {});
    setInterval(() => loadAlerts().catch(() => {}), 5000);
  }

  function parseParams(text) {
    const out = {};
    for (const part of text.split(/\s+/).filter(Boolean)) {
      const i = part.indexOf("=");
      if (i <= 0) throw new Error("parameter " + JSON.stringify(part) + " must be key=value");
      const raw = part.slice(i + 1);
      let v = raw;
      if (/^-?\d+(,-?\d+)+$/.test(raw)) v = raw.split(",").map(Number);
      else { try { v = JSON.parse(raw); } catch (e) { v = raw; } }
      out[part.slice(0, i)] = v;
    }
    return out;
  }

  function showResult(text, cls) { const p = $("command-result"); p.textContent = text; p.className = cls || "muted"; }

  async function sendCommand(e) {
    e.preventDefault();
    const strategy = $("strategy").value;
    let params;
    try { params = parseParams($("params").value); } catch (err) { showResult(err.message, "crit"); return; }
    const desc = strategy + (Object.keys(params).length ? " " + JSON.stringify(params) : "");
    if (!window.confirm("Run " + desc + " on " + HOST + "?")) return;
    showResult("running " + desc + "…", "muted");
    try {
      const res = await fetch("/api/command", { method: "POST",
        headers: { "Content-Type": "application/json", "X-Perfmesh-Token": TOKEN },
        body: JSON.stringify({ host: HOST, strategy, params }) });
      const out = await res.json();
      const verdict = out.result && out.result.verdict ? " (" + out.result.verdict + ")" : "";
      showResult(out.error ? (out.status || "error") + ": " + out.error : out.status + verdict, out.status === "success" ? "ok" : "crit");
    } catch (err) { showResult("failed: " + err, "crit"); }
  }

  /* ------------------------------------------------------------------ wiring */
  function connect() {
    const es = new EventSource(PAGE === "host" ? "/events?host=" + encodeURIComponent(HOST) : "/events");
    es.addEventListener("open", () => { state.sseOk = true; setConn(); });
    es.addEventListener("error", () => { state.sseOk = false; setConn(); });
    es.addEventListener("fleet", (e) => renderFleet(JSON.parse(e.data)));
    es.addEventListener("host", (e) => renderHost(JSON.parse(e.data)));
  }

  if (PAGE === "host") setupHost();
  else {
    $("fleet-page").classList.remove("hidden");
    const rerender = () => fetch("/api/fleet").then((r) => r.json()).then(renderFleet).catch(() => {});
    $("filter").addEventListener("input", rerender);
    $("sort").addEventListener("change", rerender);
  }
  connect();
})();
