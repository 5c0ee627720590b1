// kubepulse dashboard charts: uPlot charts that span the range asked for, show gaps as
// gaps, put ticks at round values of their unit (cores or millicores; binary steps of
// bytes), leave room for every label, and are refreshed in place so that a hover or a
// zoom survives the next poll. Plain JS, no build step.
"use strict";

window.KubepulseCharts = (function () {
  const COLORS = { used: "#2f6fde", request: "#2a9d4b", limit: "#d0342c", allocatable: "#d98b00", capacity: "#8a8f99", suggested: "#8e44ad",
    p50: "#b58ccc", p95: "#b58ccc" };
  // The right-sizing hint's percentile band: a week's p50 to p95 of CPU, shaded between
  // its two lines, where the suggestion (p95, rounded up) comes from.
  const BAND = ["p95", "p50"], BAND_FILL = "rgba(142, 68, 173, 0.12)";
  const FONT = "12px system-ui, sans-serif";
  // Tick steps: CPU in millicores (1, 2, 2.5, 5 times a power of ten), memory in bytes
  // (powers of two, so that ticks fall on 256 Mi, 1 Gi, 8 Gi ...).
  const CPU_STEPS = [];
  for (let p = 1; p <= 1e7; p *= 10) CPU_STEPS.push(p, 2 * p, 2.5 * p, 5 * p);
  const BYTE_STEPS = [];
  for (let k = 0; k <= 52; k++) BYTE_STEPS.push(2 ** k);
  const BYTE_UNITS = [["Ti", 2 ** 40], ["Gi", 2 ** 30], ["Mi", 2 ** 20], ["Ki", 2 ** 10]];

  const instances = new Set(); // the charts on the page (read by the browser tests)

  function trim(x) { return String(Math.round(x * 100) / 100); }

  // One format everywhere, as kubectl top writes CPU: whole millicores ("0m", "250m"),
  // cores with two decimals from one core up ("1.50").
  function cpu(m) {
    if (m === null || m === undefined) return "–";
    if (m >= 1000) return (m / 1000).toFixed(2);
    return Math.ceil(m - 1e-9) + "m";
  }
  function mem(b) {
    if (b === null || b === undefined) return "–";
    for (const [unit, size] of BYTE_UNITS) if (b >= size) return (b / size >= 100 ? Math.round(b / size) : trim(b / size)) + " " + unit;
    return Math.round(b) + " B";
  }
  // An axis's ticks in one unit, chosen by its largest tick.
  function cpuTicks(ticks) {
    const top = Math.max(0, ...ticks);
    return top >= 1000 ? ticks.map((m) => trim(m / 1000)) : ticks.map((m) => trim(m) + "m");
  }
  function memTicks(ticks) {
    const top = Math.max(0, ...ticks);
    const [unit, size] = BYTE_UNITS.find(([, s]) => top >= s) || ["B", 1];
    return ticks.map((b) => (b === 0 ? "0" : trim(b / size) + " " + unit));
  }
  const KINDS = {
    cpu: { steps: CPU_STEPS, ticks: cpuTicks, fmt: cpu, unit: "cores" },
    memory: { steps: BYTE_STEPS, ticks: memTicks, fmt: mem, unit: "bytes" },
  };

  function labelWidth(labels) {
    const ctx = labelWidth.ctx || (labelWidth.ctx = document.createElement("canvas").getContext("2d"));
    ctx.font = FONT;
    return Math.max(0, ...(labels || []).map((t) => ctx.measureText(t).width));
  }
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  // [t, value] rows to uPlot's columns, with a null where a step holds no data, so that
  // the line breaks there instead of running across the gap.
  function columns(rows, column, step) {
    const xs = [], ys = [];
    rows.forEach((row, i) => {
      if (i > 0 && row[0] - rows[i - 1][0] > 1.5 * step) { xs.push(rows[i - 1][0] + step); ys.push(null); }
      xs.push(row[0]); ys.push(row[column]);
    });
    return [xs, ys];
  }
  function summary(values, fmt) {
    const v = values.filter((x) => x !== null && x !== undefined);
    if (!v.length) return "no data";
    const avg = v.reduce((a, b) => a + b, 0) / v.length;
    const sorted = [...v].sort((a, b) => a - b);
    const p95 = sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]; // nearest rank
    return "latest " + fmt(v[v.length - 1]) + " · avg " + fmt(avg) + " · p95 " + fmt(p95) + " · max " + fmt(sorted[sorted.length - 1]);
  }

  // A chart: make(box, spec) once, then update(spec) at each poll.
  // spec: {title, kind: "cpu"|"memory", rows: [[t, cpu, mem]], column, lines: {name: value},
  //        start, end, step, onZoom(min, max)}
  class Chart {
    constructor(box, spec) {
      this.box = box;
      this.kind = KINDS[spec.kind];
      this.names = Object.keys(spec.lines).filter((n) => spec.lines[n] !== null && spec.lines[n] !== undefined);
      this.zoomed = spec.zoom || null;
      this.spec = spec;
      box.append(Object.assign(document.createElement("h3"), { textContent: spec.title + " (" + this.kind.unit + ")" }));
      this.plotBox = document.createElement("div");
      this.table = document.createElement("details");
      this.table.className = "points";
      box.append(this.plotBox, this.table);
      this.plot = new uPlot(this.options(spec), this.data(spec), this.plotBox);
      // A time label whole or not at all: uPlot may put a tick so near an edge that its
      // label would be cut, and that one label is left out.
      const x = this.plot.axes[0], timeLabels = x.values;
      x.values = (u, splits, ...rest) => timeLabels(u, splits, ...rest).map((label, i) => {
        if (label === null || label === undefined) return label;
        const half = labelWidth(String(label).split("\n")) / 2;
        const at = u.bbox.left / devicePixelRatio + u.valToPos(splits[i], "x");
        return at - half < 0 || at + half > u.width ? null : label;
      });
      this.plot.redraw(false, true);
      this.plotBox.addEventListener("dblclick", () => {
        this.unzoom();
        if (this.spec.onZoom) this.spec.onZoom(null, null);
      });
      this.showWindow(spec);
      this.fillTable(spec);
      this.resize = new ResizeObserver(() => this.fit());
      this.resize.observe(box);
      instances.add(this);
    }
    options(spec) {
      const fmt = this.kind.fmt;
      const grid = css("--line") || "#dde1e8";
      const fg = css("--fg") || "#1d2330";
      this.colors = { grid, fg }; // the theme's, when the chart was made
      const used = {
        label: "used", stroke: COLORS.used, width: 2,
        value: (u, v, si, idx) => (idx === null ? summary(u.data[si], fmt) : fmt(v)),
      };
      const specs = [{ value: (u, v) => (v === null ? "whole range" : new Date(v * 1000).toLocaleString()) }, used];
      for (const name of this.names) {
        specs.push({ label: name, stroke: COLORS[name] || "#888", dash: BAND.includes(name) ? [2, 3] : [6, 4], width: 1, value: (u, v, si) => fmt(u.data[si][0]) });
      }
      const steps = this.kind.steps, ticks = this.kind.ticks;
      const bands = BAND.every((n) => this.names.includes(n))
        ? [{ series: BAND.map((n) => 2 + this.names.indexOf(n)), fill: BAND_FILL }] : [];
      return {
        width: this.width(), height: 220, series: specs, bands,
        cursor: { sync: { key: "kubepulse" }, drag: { x: true, y: false, setScale: false } },
        scales: {
          x: { time: true, auto: false },
          y: { range: (u, lo, hi) => [0, Math.max(hi, 1) * 1.1] },
        },
        axes: [
          { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid }, font: FONT, space: 70 },
          {
            stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid }, font: FONT, incrs: steps,
            values: (u, vals) => ticks(vals),
            size: (u, values) => Math.ceil(labelWidth(values) + 18),
          },
        ],
        hooks: {
          setSelect: [(u) => {
            if (u.select.width < 5) return;
            const min = u.posToVal(u.select.left, "x"), max = u.posToVal(u.select.left + u.select.width, "x");
            this.zoomed = [min, max];
            u.setScale("x", { min, max });
            u.setSelect({ width: 0, height: 0 }, false);
            if (this.spec.onZoom) this.spec.onZoom(min, max);
          }],
        },
        legend: { live: true },
      };
    }
    data(spec) {
      const [xs, ys] = columns(spec.rows, spec.column, spec.step);
      const data = [xs, ys];
      for (const name of this.names) data.push(xs.map(() => spec.lines[name]));
      return data;
    }
    width() { return Math.max(240, Math.floor(this.box.clientWidth || 520) - 16); }
    fit() {
      const w = this.width();
      if (Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: 220 });
    }
    // The x axis spans the window asked for (or the zoomed part of it), data or not.
    showWindow(spec) {
      const [min, max] = this.zoomed || [spec.start, spec.end];
      this.plot.setScale("x", { min, max });
    }
    unzoom() { this.zoomed = null; this.showWindow(this.spec); }
    update(spec) {
      this.spec = spec;
      this.plot.setData(this.data(spec), false);
      this.showWindow(spec);
      this.fillTable(spec);
    }
    fillTable(spec) {
      const fmt = this.kind.fmt;
      const open = this.table.open;
      this.table.replaceChildren();
      this.table.open = open;
      this.table.append(Object.assign(document.createElement("summary"), { textContent: "Points as a table (" + spec.rows.length + ")" }));
      if (!open) { this.table.addEventListener("toggle", () => this.fillTable(this.spec), { once: true }); return; }
      const t = document.createElement("table");
      const head = t.createTHead().insertRow();
      for (const h of ["Time", spec.title]) head.append(Object.assign(document.createElement("th"), { textContent: h }));
      const body = t.createTBody();
      for (const row of spec.rows) {
        const tr = body.insertRow();
        tr.insertCell().textContent = new Date(row[0] * 1000).toLocaleString();
        tr.insertCell().textContent = fmt(row[spec.column]);
      }
      const csv = document.createElement("a");
      Object.assign(csv, { href: "#", textContent: "Download CSV", className: "download" });
      csv.download = spec.title.toLowerCase() + "-" + Math.floor(spec.start) + "-" + Math.floor(spec.end) + ".csv";
      csv.addEventListener("click", () => {
        const lines = ["time,unix_seconds," + spec.kind + (spec.kind === "cpu" ? "_millicores" : "_bytes")];
        for (const row of this.spec.rows) {
          lines.push(new Date(row[0] * 1000).toISOString() + "," + row[0] + "," + row[this.spec.column]);
        }
        if (csv.dataset.url) URL.revokeObjectURL(csv.dataset.url);
        csv.dataset.url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
        csv.href = csv.dataset.url;
      });
      this.table.append(csv, t);
    }
    destroy() { instances.delete(this); this.resize.disconnect(); this.plot.destroy(); }
  }

  return { cpu, mem, cpuTicks, memTicks, Chart, instances, labelWidth };
})();
