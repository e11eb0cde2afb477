/* perfmesh: time-series charts on the vendored uPlot (uPlot.iife.min.js, MIT, see uPlot.LICENSE),
   served by the dashboard itself: nothing comes from the network.

   Every chart shares one crosshair (uPlot's cursor sync) and one zoom: drag across any chart to
   zoom every chart to that span, double-click to go back to the selected window (live or a range). */
"use strict";
(function (global) {
  const UNITS_BYTES = ["B", "B/s"];
  const SYNC_KEY = "perfmesh";
  const CAP = 5000;                 // points kept per series
  const all = new Set();            // every chart on the page (for the shared zoom)
  let zoom = null;                  // [min, max] in seconds, or null: follow the window

  function fmtValue(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    if (UNITS_BYTES.includes(unit)) {
      const sfx = ["", "K", "M", "G", "T"];
      let i = 0; let x = Math.abs(v);
      while (x >= 1024 && i < sfx.length - 1) { x /= 1024; i++; }
      const s = (v < 0 ? -x : x).toFixed(x >= 100 || i === 0 ? 0 : 1);
      return s + " " + sfx[i] + unit;
    }
    const abs = Math.abs(v);
    const s = abs >= 1000 ? v.toFixed(0) : abs >= 10 ? v.toFixed(1) : v.toFixed(2);
    return unit === "%" ? s + "%" : unit ? s + " " + unit : s;
  }

  function niceCeil(x) {
    if (x <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  function niceBytesCeil(x) {
    if (x <= 0) return 1024;
    let p = 1;
    while (p * 1024 <= x) p *= 1024;
    return niceCeil(x / p) * p;
  }

  /* An axis label: like fmtValue, without trailing zeros. */
  function tick(v, unit) {
    return fmtValue(v, unit).replace(/\.0+(?=\D|$)/, "").replace(/(\.\d*?)0+(?=\D|$)/, "$1");
  }

  function setZoom(range) {
    zoom = range;
    for (const c of all) { c.el.dataset.zoomed = range ? "1" : "0"; c.schedule(); }
  }

  class LineChart {
    /* opts: {title, unit, max (fixed y max or null), windowS, series: [{key, label, color}], height} */
    constructor(parent, opts) {
      this.opts = Object.assign({ unit: "", max: null, windowS: 300, height: 150 }, opts);
      this.series = [];
      this.data = new Map();
      this.received = 0;
      this.plot = null;
      this.el = document.createElement("div");
      this.el.className = "chart";
      this.el.dataset.points = "0";
      this.el.dataset.zoomed = zoom ? "1" : "0";
      this.el.dataset.title = this.opts.title;
      const head = document.createElement("div");
      head.className = "chart-head";
      const title = document.createElement("span");
      title.className = "chart-title";
      title.textContent = this.opts.title;
      head.append(title);
      this.box = document.createElement("div");
      this.box.className = "chart-plot";
      this.el.append(head, this.box);
      parent.append(this.el);
      for (const s of this.opts.series || []) this.addSeries(s);
      this.pending = false;
      all.add(this);
    }

    addSeries(s) {
      if (this.data.has(s.key)) return;
      this.series.push(s);
      this.data.set(s.key, []);
      if (this.plot) { this.plot.destroy(); this.plot = null; }   // rebuilt with the new series
      this.schedule();
    }

    has(key) { return this.data.has(key); }

    setWindow(windowS) { this.opts.windowS = windowS; setZoom(null); }

    /* Append points newer than the last one held; returns how many were added. */
    push(key, points) {
      const arr = this.data.get(key);
      if (!arr) return 0;
      const last = arr.length ? arr[arr.length - 1][0] : -Infinity;
      let n = 0;
      for (const p of points) if (p[0] > last + 1e-6) { arr.push(p); n++; }
      this.trim(arr);
      this.received += n;
      this.el.dataset.points = String(this.received);
      this.schedule();
      return n;
    }

    /* Replace a series (a history range), then keep appending live points to it. */
    set(key, points) {
      const arr = this.data.get(key);
      if (!arr) return;
      const merged = points.concat(arr.filter((p) => !points.length || p[0] > points[points.length - 1][0]));
      arr.length = 0;
      for (const p of merged) arr.push(p);
      this.trim(arr);
      this.schedule();
    }

    trim(arr) {
      const horizon = Date.now() / 1000 - this.opts.windowS - 5;
      let cut = 0;
      while (cut < arr.length && arr[cut][0] < horizon) cut++;
      if (cut) arr.splice(0, cut);
      if (arr.length > CAP) arr.splice(0, arr.length - CAP);
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }

    /* uPlot's columns: the union of the series' times, a value or null per series. */
    columns() {
      const times = new Set();
      for (const arr of this.data.values()) for (const p of arr) times.add(p[0]);
      const xs = [...times].sort((a, b) => a - b);
      const index = new Map(xs.map((t, i) => [t, i]));
      const cols = [xs];
      for (const s of this.series) {
        const ys = new Array(xs.length).fill(null);
        for (const p of this.data.get(s.key)) ys[index.get(p[0])] = p[1];
        cols.push(ys);
      }
      return cols;
    }

    yRange(max) {
      const unit = this.opts.unit;
      if (this.opts.max !== null) return [0, Math.max(this.opts.max, max || 0)];
      return [0, UNITS_BYTES.includes(unit) ? niceBytesCeil((max || 0) * 1.1) : niceCeil((max || 0) * 1.1)];
    }

    build(width) {
      const unit = this.opts.unit;
      const style = getComputedStyle(document.body);
      const grid = style.getPropertyValue("--grid").trim() || "#263041";
      const muted = style.getPropertyValue("--muted").trim() || "#8b98ab";
      const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
                     font: "11px system-ui, sans-serif" };
      const fill = this.series.length <= 2;
      const opts = {
        width, height: this.opts.height,
        cursor: { sync: { key: SYNC_KEY, setSeries: false }, drag: { x: true, y: false, setScale: false } },
        legend: { show: true, live: true },
        scales: {
          x: { time: true, range: (u, min, max) => zoom || [Date.now() / 1000 - this.opts.windowS, Date.now() / 1000] },
          y: { range: (u, min, max) => this.yRange(max) },
        },
        axes: [Object.assign({}, axis), Object.assign({}, axis, { size: 58, values: (u, vals) => vals.map((v) => tick(v, unit)) })],
        series: [{}].concat(this.series.map((s) => ({
          label: s.label || this.opts.title, stroke: s.color, width: 1.6, spanGaps: true, points: { show: false },
          fill: fill ? s.color + "1f" : undefined, value: (u, v) => fmtValue(v, unit),
        }))),
        hooks: {
          setSelect: [(u) => {
            if (u.select.width < 3) return;
            const min = u.posToVal(u.select.left, "x"), max = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            setZoom([min, max]);
          }],
        },
      };
      this.plot = new global.uPlot(opts, this.columns(), this.box);
      this.plot.over.addEventListener("dblclick", () => setZoom(null));
    }

    draw() {
      const width = this.box.clientWidth;
      if (!width) return;                            // hidden (a closed <details>): drawn when shown
      if (!this.plot) { this.build(width); return; }
      if (this.plot.width !== width) this.plot.setSize({ width, height: this.opts.height });
      this.plot.setData(this.columns(), true);
    }
  }

  /* A sparkline on a small canvas: values only, scaled to [0, max]. */
  function sparkline(canvas, values, max, color) {
    const ratio = global.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    if (values.length < 2) return;
    const top = Math.max(max || 0, ...values) || 1;
    const step = w / (values.length - 1);
    g.beginPath();
    values.forEach((v, i) => { const x = i * step, y = h - 1 - (v / top) * (h - 2); i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.strokeStyle = color; g.lineWidth = 1.4; g.stroke();
    g.lineTo(w, h); g.lineTo(0, h); g.closePath();
    g.globalAlpha = 0.18; g.fillStyle = color; g.fill(); g.globalAlpha = 1;
  }

  global.LineChart = LineChart;
  global.perfmeshZoom = () => zoom;
  global.drawSparkline = sparkline;
  global.fmtValue = fmtValue;
})(window);
