/* perfmesh: a small hand-written canvas line chart (no dependencies). */
"use strict";
(function (global) {
  const UNITS_BYTES = ["B", "B/s"];

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

  function clock(t, spanS) {
    const d = new Date(t * 1000).toTimeString();
    return spanS <= 1200 ? d.slice(0, 8) : d.slice(0, 5);
  }

  /* An axis label: like fmtValue, without trailing zeros. */
  function tick(v, unit) {
    return fmtValue(v, unit).replace(/\.0+(?=\D|$)/, "").replace(/(\.\d*?)0+(?=\D|$)/, "$1");
  }

  class LineChart {
    /* opts: {title, unit, max (fixed y max or null), windowS, series: [{key, label, color}], height} */
    constructor(parent, opts) {
      this.opts = Object.assign({ unit: "", max: null, windowS: 300, height: 150 }, opts);
      this.series = [];
      this.data = new Map();
      this.received = 0;
      this.hoverX = null;
      this.el = document.createElement("div");
      this.el.className = "chart";
      this.el.dataset.points = "0";
      this.el.dataset.title = this.opts.title;
      const head = document.createElement("div");
      head.className = "chart-head";
      const title = document.createElement("span");
      title.className = "chart-title";
      title.textContent = this.opts.title;
      this.legend = document.createElement("span");
      this.legend.className = "legend";
      head.append(title, this.legend);
      this.canvas = document.createElement("canvas");
      this.canvas.style.height = this.opts.height + "px";
      this.el.append(head, this.canvas);
      parent.append(this.el);
      for (const s of this.opts.series || []) this.addSeries(s);
      this.canvas.addEventListener("mousemove", (e) => { this.hoverX = e.offsetX; this.draw(); });
      this.canvas.addEventListener("mouseleave", () => { this.hoverX = null; this.draw(); });
      this.pending = false;
    }

    addSeries(s) {
      if (this.data.has(s.key)) return;
      this.series.push(s);
      this.data.set(s.key, []);
      const item = document.createElement("span");
      item.className = "legend-item";
      const sw = document.createElement("i");
      sw.style.background = s.color;
      const label = document.createElement("span");
      label.textContent = s.label;
      const val = document.createElement("b");
      val.textContent = "–";
      item.append(sw, label, val);
      this.legend.append(item);
      s.valueEl = val;
    }

    has(key) { return this.data.has(key); }

    setWindow(windowS) { this.opts.windowS = windowS; this.schedule(); }

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
      const cap = 5000;
      if (arr.length > cap) arr.splice(0, arr.length - cap);
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }

    draw() {
      const c = this.canvas;
      const ratio = global.devicePixelRatio || 1;
      const w = c.clientWidth, h = c.clientHeight;
      if (!w || !h) return;
      if (c.width !== Math.round(w * ratio) || c.height !== Math.round(h * ratio)) {
        c.width = Math.round(w * ratio); c.height = Math.round(h * ratio);
      }
      const g = c.getContext("2d");
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, w, h);
      const unit = this.opts.unit;
      const left = 58, right = 8, top = 8, bottom = 20;
      const pw = w - left - right, ph = h - top - bottom;
      const now = Date.now() / 1000;
      const t1 = now, t0 = now - this.opts.windowS;
      let ymax = 0;
      for (const arr of this.data.values()) for (const p of arr) if (p[0] >= t0 && p[1] > ymax) ymax = p[1];
      ymax = this.opts.max !== null ? Math.max(this.opts.max, ymax) : (UNITS_BYTES.includes(unit) ? niceBytesCeil(ymax * 1.1) : niceCeil(ymax * 1.1));
      const X = (t) => left + ((t - t0) / (t1 - t0)) * pw;
      const Y = (v) => top + ph - (Math.max(v, 0) / ymax) * ph;
      const style = getComputedStyle(document.body);
      const grid = style.getPropertyValue("--grid").trim() || "#263041";
      const muted = style.getPropertyValue("--muted").trim() || "#8b98ab";
      g.font = "11px system-ui, sans-serif";
      g.lineWidth = 1;
      g.strokeStyle = grid;
      g.fillStyle = muted;
      g.textAlign = "right"; g.textBaseline = "middle";
      for (let i = 0; i <= 4; i++) {
        const v = (ymax * i) / 4, y = Math.round(Y(v)) + 0.5;
        g.beginPath(); g.moveTo(left, y); g.lineTo(left + pw, y); g.stroke();
        g.fillText(tick(v, unit), left - 6, y);
      }
      g.textAlign = "center"; g.textBaseline = "alphabetic";
      const ticks = Math.max(2, Math.floor(pw / 100));
      for (let i = 0; i <= ticks; i++) {
        const t = t0 + ((t1 - t0) * i) / ticks;
        g.fillText(clock(t, t1 - t0), Math.min(Math.max(X(t), left + 24), left + pw - 24), h - 5);
      }
      let hoverT = null;
      if (this.hoverX !== null && this.hoverX >= left) hoverT = t0 + ((this.hoverX - left) / pw) * (t1 - t0);
      g.save();
      g.beginPath(); g.rect(left, top - 1, pw, ph + 2); g.clip();
      for (const s of this.series) {
        const arr = this.data.get(s.key);
        let shown = arr.length ? arr[arr.length - 1][1] : null;
        if (arr.length > 1) {
          g.beginPath();
          let started = false;
          for (const p of arr) {
            if (p[0] < t0 - this.opts.windowS * 0.05) continue;
            const x = X(p[0]), y = Y(p[1]);
            if (!started) { g.moveTo(x, y); started = true; } else g.lineTo(x, y);
          }
          g.strokeStyle = s.color; g.lineWidth = 1.6; g.lineJoin = "round";
          g.stroke();
          if (this.series.length <= 2 || s.fill) {
            g.lineTo(X(arr[arr.length - 1][0]), top + ph);
            g.lineTo(X(Math.max(arr[0][0], t0 - this.opts.windowS * 0.05)), top + ph);
            g.closePath();
            g.globalAlpha = 0.12; g.fillStyle = s.color; g.fill(); g.globalAlpha = 1;
          }
        }
        if (hoverT !== null && arr.length) {
          let best = arr[0];
          for (const p of arr) if (Math.abs(p[0] - hoverT) < Math.abs(best[0] - hoverT)) best = p;
          shown = best[1];
        }
        if (s.valueEl) s.valueEl.textContent = fmtValue(shown, unit);
      }
      g.restore();
      if (hoverT !== null) {
        g.strokeStyle = muted; g.setLineDash([3, 3]);
        g.beginPath(); g.moveTo(this.hoverX + 0.5, top); g.lineTo(this.hoverX + 0.5, top + ph); g.stroke();
        g.setLineDash([]);
        g.fillStyle = muted; g.textAlign = "left";
        g.fillText(clock(hoverT, 0), Math.min(this.hoverX + 4, left + pw - 56), top + 10);
      }
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
  global.drawSparkline = sparkline;
  global.fmtValue = fmtValue;
})(window);
