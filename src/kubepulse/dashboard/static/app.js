// kubepulse dashboard: plain JS, no build step. Every name from the API goes into the
// page through textContent or attributes, never through innerHTML.
"use strict";

(function () {
  const RANGES = ["15m", "1h", "6h", "24h", "7d", "30d"];
  const Charts = window.KubepulseCharts;
  const state = { csrf: "", pollMs: 5000, timer: null, viewKey: "", view: null, charts: [] };
  const main = document.getElementById("view");
  let actions = null; // Kubernetes mode's actions (actions.js), null in local mode

  // -- DOM helpers ---------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  // "1 pod", "2 pods": a count with its noun.
  function counted(n, noun) { return n + " " + noun + (n === 1 ? "" : "s"); }

  // -- formatting ----------------------------------------------------------------------
  // As kubectl top writes them (charts.js): "0m", "250m", "1.50 cores"; "512 Mi".
  function cpu(m) {
    const text = Charts.cpu(m);
    return m >= 1000 ? text + " cores" : text;
  }
  const mem = Charts.mem;
  // Age as kubectl get prints it: 45s, 12m, 5h, 3d.
  function age(created) {
    const seconds = Math.max(0, (Date.now() - Date.parse(created)) / 1000);
    if (seconds < 120) return Math.floor(seconds) + "s";
    if (seconds < 7200) return Math.floor(seconds / 60) + "m";
    if (seconds < 172800) return Math.floor(seconds / 3600) + "h";
    return Math.floor(seconds / 86400) + "d";
  }
  function pct(used, of) {
    if (used === null || used === undefined || !of) return null;
    return (100 * used) / of;
  }
  function usageBar(used, of, fmt) {
    const p = pct(used, of);
    const fill = el("span", { class: "fill" + (p >= 90 ? " bad" : p >= 70 ? " warn" : "") });
    fill.style.width = Math.min(100, p || 0).toFixed(1) + "%";
    const label = p === null ? fmt(used) : fmt(used) + " / " + fmt(of) + " (" + p.toFixed(0) + "%)";
    return el("span", { class: "usage" },
      el("span", { class: "bar", role: "img", "aria-label": label }, fill), label);
  }
  // A node's CPU over 30 minutes: the line scaled to its own maximum, which is written
  // beside it (a sparkline without a scale would say nothing of size).
  function sparkline(points) {
    const canvas = el("canvas", { class: "spark", width: 120, height: 24, "aria-hidden": "true" });
    const top = points && points.length ? Math.max(...points.map((p) => p[1])) : null;
    if (points && points.length > 1) {
      const ctx = canvas.getContext("2d");
      const values = points.map((p) => p[1]);
      const max = Math.max(...values) || 1;
      ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue("--accent");
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      values.forEach((v, i) => {
        const x = (i / (values.length - 1)) * 118 + 1;
        const y = 23 - (v / max) * 21;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
    return el("span", { class: "sparkline" }, canvas,
      el("span", { class: "spark-max hint", text: top === null ? "no history yet" : "max " + cpu(top) }));
  }

  // -- routing: the hash holds the view, e.g. #/nodes/node-a?range=1h -----------------
  function parseHash() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [path, query] = hash.split("?");
    const parts = (path || "overview").split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(query || "") };
  }
  function href(parts, params) {
    const path = "#/" + parts.map(encodeURIComponent).join("/");
    const q = params ? new URLSearchParams(params).toString() : "";
    return q ? path + "?" + q : path;
  }
  function go(target) { location.hash = target; }
  function rowLink(tr, target) {
    tr.className = "row";
    tr.tabIndex = 0;
    tr.dataset.href = target;
    tr.addEventListener("click", (e) => { if (!e.target.closest("a")) go(target); });
    tr.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && e.target === tr) { e.preventDefault(); go(target); }
    });
    return tr;
  }

  // -- talking to the server -----------------------------------------------------------
  async function api(path) {
    const resp = await fetch("api/" + path, { credentials: "same-origin", cache: "no-store" });
    if (resp.status === 401) { location.href = "login"; throw new Error("signed out"); }
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    return body;
  }
  // Only a view's newest request may draw: an older one (a poll sent just before a filter
  // was applied) that answers after it is dropped, so that a table matches its form.
  const STALE = new Error("superseded by a newer request");
  async function newest(view, path) {
    const ticket = (view.ticket = (view.ticket || 0) + 1);
    const body = await api(path);
    if (ticket !== view.ticket) throw STALE;
    return body;
  }
  // A state-changing call: the session's CSRF token goes with it. Answers {ok, status, body}.
  async function send(method, path, body) {
    const opts = { method, credentials: "same-origin", cache: "no-store", headers: { "X-CSRF-Token": state.csrf } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch("api/" + path, opts);
    if (resp.status === 401) { location.href = "login"; throw new Error("signed out"); }
    const data = await resp.json().catch(() => ({ error: resp.status + " " + resp.statusText }));
    return { ok: resp.ok, status: resp.status, body: data };
  }
  function setStatus(text, bad) {
    const s = document.getElementById("status");
    s.textContent = text;
    s.className = "status" + (bad ? " error" : "");
  }

  // -- charts --------------------------------------------------------------------------
  // Charts live across polls (refreshed in place, so a hover or zoom survives), keyed by
  // what they show; a new view drops them.
  function destroyCharts() { state.charts.forEach((c) => c.destroy()); state.charts = []; state.chartsByKey = {}; }
  function chart(container, key, title, kind, d, rows, lines) {
    // An answer that comes after its view was left (a range picked while the first one
    // loaded) must not redraw the charts of the view shown now, which share these keys.
    if (!container.isConnected) return;
    state.chartsByKey = state.chartsByKey || {};
    const column = kind === "cpu" ? 1 : 2;
    const spec = { title, kind, rows, column, lines, start: d.start, end: d.end, step: d.step,
      zoom: zoomOf(), onZoom: zoomTo };
    const names = Object.keys(lines).filter((n) => lines[n] !== null && lines[n] !== undefined).join();
    const known = state.chartsByKey[key];
    if (known && known.names.join() === names) { known.update(spec); return; }
    if (known) { known.destroy(); known.box.remove(); }
    const box = el("div", { class: "chart", "data-chart": key });
    container.append(box);
    const made = new Charts.Chart(box, spec);
    state.chartsByKey[key] = made;
    state.charts.push(made);
  }
  // A zoom is kept in the URL (from, to: seconds) so that a window can be shared.
  function zoomOf() {
    const { params } = parseHash();
    const from = Number(params.get("from")), to = Number(params.get("to"));
    return from && to && to > from ? [from, to] : null;
  }
  function zoomTo(min, max) {
    const { parts, params } = parseHash();
    const q = Object.fromEntries(params.entries());
    delete q.from; delete q.to;
    if (min !== null) { q.from = String(Math.floor(min)); q.to = String(Math.ceil(max)); }
    history.replaceState(null, "", href(parts, q));
    state.viewKey = location.hash;
    state.charts.forEach((c) => { c.zoomed = min === null ? null : [min, max]; c.showWindow(c.spec); });
  }
  function rangeLinks(parts, current) {
    const nav = el("p", { class: "ranges" }, "Range: ");
    for (const r of RANGES) {
      nav.append(el("a", { href: href(parts, { range: r }), "aria-current": r === current ? "true" : null, text: r }));
    }
    return nav;
  }

  // -- views: build(parts, params) makes the frame once; update(data) refills it --------
  // A table whose column headers sort it (click, or Enter): each cell's data-sort (a
  // number) or its text; the order is kept across refreshes (resort()).
  function table(headers) {
    const tbody = el("tbody");
    const head = el("tr");
    const t = { table: null, tbody, sortBy: -1, descending: false };
    headers.forEach((h, i) => {
      const th = el("th", { class: h.num ? "num sortable" : "sortable", text: h.text || h, tabindex: 0,
        title: h.title || null, "aria-sort": "none" });
      const sort = () => {
        t.descending = t.sortBy === i ? !t.descending : Boolean(h.num);
        t.sortBy = i;
        head.querySelectorAll("th").forEach((x) => x.setAttribute("aria-sort", "none"));
        th.setAttribute("aria-sort", t.descending ? "descending" : "ascending");
        resort(t);
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
      head.append(th);
    });
    t.table = el("table", {}, el("thead", {}, head), tbody);
    return t;
  }
  // CSV and JSON of a table as it is shown (its order, its cells' text).
  function tableData(t) {
    const headers = [...t.table.querySelectorAll("thead th")].map((th) => th.textContent.replace(/ [▲▼]$/, ""));
    const rows = [...t.tbody.children].map((tr) => [...tr.children].map((td) => {
      const link = td.querySelector("a");
      return (link ? link.textContent : td.textContent).trim();
    }));
    return { headers, rows };
  }
  function csvCell(v) { return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  function downloads(t, name) {
    const link = (label, type, make) => {
      const a = el("a", { href: "#", class: "download", download: name + "." + label.toLowerCase(), text: label });
      a.addEventListener("click", () => {
        if (a.dataset.url) URL.revokeObjectURL(a.dataset.url);
        a.dataset.url = URL.createObjectURL(new Blob([make(tableData(t))], { type }));
        a.href = a.dataset.url;
      });
      return a;
    };
    return el("p", { class: "downloads hint" }, "Download: ",
      link("CSV", "text/csv", (d) => [d.headers, ...d.rows].map((r) => r.map(csvCell).join(",")).join("\n") + "\n"),
      " · ",
      link("JSON", "application/json", (d) => JSON.stringify(d.rows.map((r) => Object.fromEntries(d.headers.map((h, i) => [h, r[i]]))), null, 1)));
  }
  function resort(t) {
    if (t.sortBy < 0) return;
    const key = (tr) => {
      const cell = tr.children[t.sortBy];
      if (!cell) return "";
      return cell.dataset.sort !== undefined ? Number(cell.dataset.sort) : cell.textContent;
    };
    const rows = [...t.tbody.children];
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return t.descending ? -order : order;
    });
    t.tbody.append(...rows);
  }
  // Usage against what the pod asks for: percentages, and badges that say what to look at.
  // Their thresholds are the user's (Settings), kept in this browser.
  const BADGE_DEFAULTS = {
    nearLimit: 90, // % of the memory limit at which the OOM killer is near
    overRequest: 100, // % of a request above which a pod uses more than it asked for
    farAbove: 200, // % of the 7-day suggestion from which a request is "far above use"
  };
  const BADGE_KEY = "kubepulse-badges";
  function thresholds() {
    let saved = {};
    try { saved = JSON.parse(localStorage.getItem(BADGE_KEY) || "{}") || {}; } catch (e) { saved = {}; }
    const found = {};
    for (const [k, v] of Object.entries(BADGE_DEFAULTS)) {
      const n = Number(saved[k]);
      found[k] = Number.isFinite(n) && n > 0 ? n : v;
    }
    return found;
  }
  function percentCell(used, of) {
    const p = pct(used, of);
    return el("td", { class: "num" + (p !== null && p >= 100 ? " over" : ""), "data-sort": p === null ? -1 : p.toFixed(2),
      title: p === null ? (of ? "no usage yet" : "none set") : null,
      text: p === null ? "–" : Math.round(p) + "%" });
  }
  function badges(p) {
    const found = [];
    const t = thresholds();
    const memPct = pct(p.memory.used, p.memory.limit);
    if (memPct !== null && memPct >= t.nearLimit) found.push(["bad", "memory near limit", "working set at " + Math.round(memPct) + "% of its limit (badge from " + t.nearLimit + "%)"]);
    const cpuPct = pct(p.cpu.used, p.cpu.request), memReq = pct(p.memory.used, p.memory.request);
    if ((cpuPct !== null && cpuPct > t.overRequest) || (memReq !== null && memReq > t.overRequest)) {
      found.push(["warn", "over request", "uses more than " + t.overRequest + "% of what it requests"]);
    }
    if (p.cpu.limit === null && p.memory.limit === null && p.node) found.push(["info", "no limits", "no CPU or memory limit set"]);
    return found.map(([kind, text, why]) => el("span", { class: "badge " + kind, title: why, text }));
  }
  // The pod page's right-sizing hint: each container's requests beside what 7 days of its
  // use suggest (the rule of `kubepulse recommend`: p95 of CPU; peak working set + 15%).
  function rightsizing(containers, hints, id, title) {
    const t = thresholds();
    const box = el("div", { id: id || "pod-rightsize" }, el("h2", { text: title || "Right-sizing, last 7 days" }));
    for (const c of containers) {
      const h = hints[c.name];
      if (!h) continue;
      const line = el("p", { class: "rightsize", "data-container": c.name }, el("strong", { text: c.name + ": " }));
      if (h.reason) {
        line.append(h.reason + " (a point is 15 minutes of history)");
      } else {
        const far = [];
        const part = (what, request, suggested, show, why) => {
          const p = pct(request, suggested);
          if (p !== null && p >= t.farAbove) far.push(what);
          return what + " request " + (request === null ? "none set" : show(request)) + ", suggested " + show(suggested) + " (" + why + ")";
        };
        line.append(part("CPU", c.cpu.request, h.cpu_request, cpu, "p95 " + cpu(h.cpu_p95)) + " · " +
          part("memory", c.memory.request, h.memory_request, mem, "peak " + mem(h.memory_max) + " + 15%"));
        if (far.length) {
          line.append(" ", el("span", { class: "badge warn", title: far.join(" and ") + " request at " + t.farAbove + "% or more of the suggestion (Settings)", text: "request far above use" }));
        }
      }
      box.append(line);
    }
    return box;
  }
  function podRow(p, withNode) {
    const tr = rowLink(el("tr"), href(["pods", p.namespace, p.name]));
    tr.append(...[
      el("td", { text: p.namespace }),
      el("td", {}, el("a", { href: href(["pods", p.namespace, p.name]), text: p.name }), ...badges(p)),
      withNode === false ? null : el("td", { text: p.node }),
      el("td", { class: "num", "data-sort": p.cpu.used ?? -1, text: cpu(p.cpu.used),
        title: p.cpu.used === null ? "no metrics yet: a pod is served from its second sample" : null }),
      el("td", { class: "num", "data-sort": p.cpu.request ?? -1, text: p.cpu.request === null ? "–" : cpu(p.cpu.request),
        title: p.cpu.request === null ? "no CPU request set" : null }),
      percentCell(p.cpu.used, p.cpu.request),
      el("td", { class: "num", "data-sort": p.memory.used ?? -1, text: mem(p.memory.used),
        title: p.memory.used === null ? "no metrics yet: a pod is served from its second sample" : null }),
      el("td", { class: "num", "data-sort": p.memory.limit ?? -1, text: p.memory.limit === null ? "–" : mem(p.memory.limit),
        title: p.memory.limit === null ? "no memory limit set" : null }),
      percentCell(p.memory.used, p.memory.limit),
    ].filter(Boolean));
    return tr;
  }
  const POD_HEADERS = ["Namespace", "Name", "Node", { text: "CPU", num: 1 }, { text: "CPU req", num: 1 },
    { text: "CPU % req", num: 1, title: "CPU used, as a share of the pod's CPU request" },
    { text: "Memory", num: 1 }, { text: "Mem limit", num: 1 },
    { text: "Mem % limit", num: 1, title: "working set, as a share of the pod's memory limit" }];
  function nodeRow(n, withSpark) {
    const tr = rowLink(el("tr"), href(["nodes", n.name]));
    tr.append(
      el("td", {}, el("a", { href: href(["nodes", n.name]), text: n.name })),
      el("td", {}, usageBar(n.cpu.used, n.cpu.allocatable, cpu)),
      el("td", {}, usageBar(n.memory.used, n.memory.allocatable, mem)),
      el("td", { class: "num", text: n.pods }),
    );
    if (withSpark) tr.append(el("td", {}, sparkline(n.spark)));
    return tr;
  }

  // A detail view's title and its range links (view.range: the one chosen).
  function heading(view, frame, parts, params, word, id, name) {
    view.range = params.get("range") || "1h";
    frame.append(el("h1", {}, word + " ", el("span", { id, text: name })), rangeLinks(parts, view.range));
  }
  // A detail view's body: its facts (view.info), its charts, then a table of its pods.
  function chartsAndPods(view, frame, headers, heading, download) {
    view.charts = el("div", { class: "charts" });
    const t = table(headers);
    view.table = t;
    view.tbody = t.tbody;
    frame.append(view.info, view.charts, el("h2", { text: heading }),
      downloads(t, download), el("div", { class: "scroll" }, t.table));
  }

  const views = {
    overview: {
      path: () => "overview",
      build(frame, parts, params) {
        this.range = params.get("range") || "1h";
        frame.append(el("h1", { text: "Cluster overview" }), rangeLinks(parts, this.range));
        this.cards = el("div");
        // The trend's charts stay across refreshes (setData), so a hover or zoom survives.
        this.charts = el("div", { class: "charts", id: "cluster-trend" });
        this.body = el("div");
        frame.append(this.cards, this.charts, this.body);
      },
      restyle() { clear(this.charts); },
      async update() {
        const d = await api("overview?range=" + encodeURIComponent(this.range));
        const b = this.body;
        clear(b);
        clear(this.cards);
        const t = d.totals;
        this.cards.append(el("div", { class: "cards" },
          el("div", { class: "card" }, el("div", { text: "Nodes" }), el("div", { class: "big", id: "total-nodes", text: t.nodes })),
          el("div", { class: "card" }, el("div", { text: "Pods" }), el("div", { class: "big", id: "total-pods", text: t.pods })),
          el("div", { class: "card" }, el("div", { text: "CPU used" }), usageBar(t.cpu.used, t.cpu.allocatable, cpu)),
          el("div", { class: "card" }, el("div", { text: "Memory used" }), usageBar(t.memory.used, t.memory.allocatable, mem)),
        ));
        const why = document.getElementById("trend-error");
        if (why) why.remove();
        if (d.history_error) {
          this.charts.before(el("p", { class: "error", id: "trend-error", text: "No cluster trend: " + d.history_error }));
        } else if (d.history && t.nodes) {
          // The allocatable totals are drawn as lines, so the trend reads against capacity.
          chart(this.charts, "cpu", "Cluster CPU", "cpu", d, d.series, { allocatable: t.cpu.allocatable });
          chart(this.charts, "memory", "Cluster memory", "memory", d, d.series, { allocatable: t.memory.allocatable });
        }
        b.append(el("h2", { text: "Nodes" }));
        const nodes = table(["Name", "CPU", "Memory", { text: "Pods", num: 1 }]);
        nodes.table.id = "overview-nodes";
        d.nodes.forEach((n) => nodes.tbody.append(nodeRow(n, false)));
        b.append(nodes.table);
        for (const [key, title, fmt] of [["top_cpu", "Top pods by CPU", cpu], ["top_memory", "Top pods by memory", mem]]) {
          b.append(el("h2", { text: title }));
          const t2 = table(["Namespace", "Name", "Node", { text: "Used", num: 1 }]);
          for (const p of d[key]) {
            const tr = rowLink(el("tr"), href(["pods", p.namespace, p.name]));
            tr.append(el("td", { text: p.namespace }),
              el("td", {}, el("a", { href: href(["pods", p.namespace, p.name]), text: p.name })),
              el("td", { text: p.node }), el("td", { class: "num", text: fmt(p.used) }));
            t2.tbody.append(tr);
          }
          b.append(t2.table);
        }
        b.append(el("h2", { text: "Namespaces" }), namespaceTable(d.namespaces));
        const ended = await api("ended");
        if (ended.items.length) {
          const t = table(["Namespace", "Name", "Last seen"]);
          t.table.id = "ended-pods";
          for (const p of ended.items) {
            const to = href(["pods", p.namespace, p.name]);
            const tr = rowLink(el("tr"), to);
            tr.append(el("td", { text: p.namespace }), el("td", {}, el("a", { href: to, text: p.name })),
              el("td", { "data-sort": p.last_seen || 0, text: p.last_seen ? new Date(p.last_seen * 1000).toLocaleString() : "in the last day" }));
            t.tbody.append(tr);
          }
          b.append(el("h2", { text: "Recently ended (last 24 h)" }), el("div", { class: "scroll" }, t.table));
        }
      },
    },
    nodes: {
      path: () => "nodes",
      build(frame) {
        frame.append(el("h1", { text: "Nodes" }));
        const t = table(["Name", "CPU", "Memory", { text: "Pods", num: 1 }, "CPU, 30 min"]);
        t.table.id = "nodes-table";
        this.table = t;
        this.tbody = t.tbody;
        frame.append(downloads(t, "nodes"), el("div", { class: "scroll" }, t.table));
      },
      async update() {
        const d = await api("nodes");
        clear(this.tbody);
        d.items.forEach((n) => this.tbody.append(nodeRow(n, true)));
        resort(this.table);
      },
    },
    node: {
      build(frame, parts, params) {
        this.name = parts[1];
        heading(this, frame, parts, params, "Node", "node-name", this.name);
        this.info = el("div");
        chartsAndPods(this, frame, POD_HEADERS.filter((h) => h !== "Node"), "Pods on this node", "pods-on-" + this.name);
      },
      restyle() { clear(this.charts); },
      async update() {
        const d = await api("nodes/" + encodeURIComponent(this.name) + "?range=" + encodeURIComponent(this.range));
        const n = d.node;
        clear(this.info);
        this.info.append(el("p", { class: "facts" },
          el("span", {}, "CPU ", usageBar(n.cpu.used, n.cpu.allocatable, cpu)),
          el("span", {}, "Memory ", usageBar(n.memory.used, n.memory.allocatable, mem)),
          el("span", {}, "Roles: " + (n.roles.join(", ") || "none"))));
        chart(this.charts, "cpu", "CPU", "cpu", d, d.series, { allocatable: n.cpu.allocatable, capacity: n.cpu.capacity });
        chart(this.charts, "memory", "Memory", "memory", d, d.series, { allocatable: n.memory.allocatable, capacity: n.memory.capacity });
        clear(this.tbody);
        d.pods.forEach((p) => this.tbody.append(podRow(p, false)));
        resort(this.table);
      },
    },
    pods: {
      build(frame, parts, params) {
        frame.append(el("h1", { text: "Pods" }));
        const form = el("form", { class: "filters", role: "search" });
        const field = (name, label, input) => form.append(el("label", {}, label, input));
        this.inputs = {
          namespace: el("input", { name: "namespace", value: params.get("namespace") || "" }),
          label: el("input", { name: "label", placeholder: "app=web", value: params.get("label") || "" }),
          name: el("input", { name: "name", value: params.get("name") || "" }),
          sort: el("select", { name: "sort" }, ...["cpu", "memory", "name"].map((s) => el("option", { value: s, text: s }))),
        };
        this.inputs.sort.value = params.get("sort") || "cpu";
        field("namespace", "Namespace", this.inputs.namespace);
        field("label", "Label selector", this.inputs.label);
        field("name", "Name contains", this.inputs.name);
        field("sort", "Sort by", this.inputs.sort);
        form.append(el("button", { type: "submit", text: "Apply" }));
        const apply = (e) => {
          if (e) e.preventDefault();
          const q = {};
          for (const [k, input] of Object.entries(this.inputs)) if (input.value) q[k] = input.value;
          history.replaceState(null, "", href(["pods"], q));
          state.viewKey = location.hash;
          this.update().catch(fail);
        };
        form.addEventListener("submit", apply);
        this.inputs.sort.addEventListener("change", apply);
        this.count = el("p", { class: "hint", id: "pods-count" });
        const t = table(POD_HEADERS);
        t.table.id = "pods-table";
        this.table = t;
        this.tbody = t.tbody;
        frame.append(form, this.count, downloads(t, "pods"), el("div", { class: "scroll" }, t.table));
      },
      async update() {
        const q = new URLSearchParams();
        for (const [k, input] of Object.entries(this.inputs)) if (input.value) q.set(k, input.value);
        const d = await newest(this, "pods?" + q.toString());
        this.count.textContent = counted(d.total, "pod") + (d.total > d.items.length ? ", first " + d.items.length + " shown" : "");
        clear(this.tbody);
        d.items.forEach((p) => this.tbody.append(podRow(p)));
        resort(this.table);
      },
    },
    pod: {
      build(frame, parts, params) {
        this.ns = parts[1];
        this.name = parts[2];
        heading(this, frame, parts, params, "Pod", "pod-name", this.ns + "/" + this.name);
        this.info = el("div");
        this.body = el("div");
        // Built once, not on each refresh, so an open editor or log keeps what it holds.
        frame.append(this.info, actions ? actions.podPanel(this.ns, this.name) : "", this.body);
      },
      restyle() { this.names = null; },
      async update() {
        const d = await api("pods/" + encodeURIComponent(this.ns) + "/" + encodeURIComponent(this.name) +
          "?range=" + encodeURIComponent(this.range));
        const p = d.pod;
        clear(this.info);
        if (d.ended) {
          const when = d.last_seen ? new Date(d.last_seen * 1000).toLocaleString() : "before this range";
          this.info.append(el("p", { class: "ended", id: "pod-ended", text: "Ended: last seen " + when + ". Showing its history." }));
        }
        this.info.append(el("p", { class: "facts" },
          el("span", {}, "Node ", p.node ? el("a", { href: href(["nodes", p.node]), text: p.node }) : "–"),
          p.owner ? el("span", {}, p.owner.kind + " ", el("a", { id: "pod-owner", href: href(["workloads", this.ns, p.owner.kind, p.owner.name]), text: p.owner.name })) : null,
          el("span", { text: "CPU " + cpu(p.cpu.used) }), el("span", { text: "Memory " + mem(p.memory.used) }),
          p.phase ? el("span", { id: "pod-phase", text: "Status " + p.phase }) : null,
          p.restarts !== null && p.restarts !== undefined ? el("span", { text: "Restarts " + p.restarts }) : null,
          p.created ? el("span", { id: "pod-age", title: p.created, text: "Age " + age(p.created) }) : null));
        const labels = Object.entries(p.labels || {});
        if (labels.length) {
          this.info.append(el("p", { class: "labels" }, ...labels.map(([k, v]) => el("span", { class: "badge", text: k + "=" + v }))));
        }
        const hints = Object.fromEntries((d.rightsize || []).map((h) => [h.name, h]));
        if (d.rightsize && d.rightsize.length) this.info.append(rightsizing(d.containers, hints));
        const names = ["pod"].concat(d.containers.map((c) => c.name)).join("\n");
        if (this.names !== names) { destroyCharts(); clear(this.body); this.sections = {}; this.names = names; }
        const section = (key, heading) => {
          if (!this.sections[key]) {
            const charts = el("div", { class: "charts" });
            this.body.append(heading, charts);
            this.sections[key] = charts;
          }
          return this.sections[key];
        };
        const total = section("pod", el("h2", { text: "Pod total" }));
        chart(total, "pod/cpu", "CPU", "cpu", d, d.series, { request: p.cpu.request, limit: p.cpu.limit });
        chart(total, "pod/memory", "Memory", "memory", d, d.series, { request: p.memory.request, limit: p.memory.limit });
        for (const c of d.containers) {
          const charts = section("c/" + c.name, el("h2", {}, "Container ", el("span", { text: c.name })));
          const h = hints[c.name] || {};
          chart(charts, "c/" + c.name + "/cpu", "CPU", "cpu", d, c.series, { request: c.cpu.request, limit: c.cpu.limit, suggested: h.cpu_request,
            p50: h.cpu_request ? h.cpu_p50 : null, p95: h.cpu_request ? h.cpu_p95 : null });
          chart(charts, "c/" + c.name + "/memory", "Memory", "memory", d, c.series, { request: c.memory.request, limit: c.memory.limit, suggested: h.memory_request });
        }
      },
    },
    // A workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job): its pods, live and
    // ended, and their usage summed step by step, against the sum of their requests and limits.
    workload: {
      build(frame, parts, params) {
        [, this.ns, this.kind, this.name] = parts;
        heading(this, frame, parts, params, this.kind, "workload-name", this.ns + "/" + this.name);
        this.info = el("p", { id: "workload-info" });
        chartsAndPods(this, frame, POD_HEADERS, "Pods", "pods-of-" + this.name);
        this.hint = el("div");
        this.info.after(this.hint);
      },
      restyle() { clear(this.charts); },
      async update() {
        const d = await api(["workloads", this.ns, this.kind, this.name].map(encodeURIComponent).join("/") +
          "?range=" + encodeURIComponent(this.range));
        const sum = (resource, field) => {
          const values = d.pods.map((p) => p[resource][field]);
          return values.length && values.every((v) => v !== null) ? values.reduce((a, b) => a + b, 0) : null;
        };
        const used = (resource) => {
          const known = d.pods.map((p) => p[resource].used).filter((v) => v !== null);
          return known.length ? known.reduce((a, b) => a + b, 0) : null; // "–": no metrics yet
        };
        const pooled = d.live + d.ended.length;
        this.info.textContent = counted(d.live, "pod") + " running" +
          (d.ended.length ? ", " + d.ended.length + " ended in this range" : "") +
          " · CPU " + cpu(used("cpu")) + " · Memory " + mem(used("memory")) +
          (d.summed < pooled ? " · the charts sum " + d.summed + " of its " + counted(pooled, "pod") : " · the charts sum all of them");
        // Its containers' suggestions from all its pods' last 7 days, per pod; on the
        // charts, times the pods running, beside the sum of what they request.
        const hints = Object.fromEntries((d.rightsize || []).map((h) => [h.name, h]));
        clear(this.hint);
        if (d.rightsize && d.rightsize.length) this.hint.append(rightsizing(d.containers, hints, "workload-rightsize", "Right-sizing per pod, from all its pods' last 7 days"));
        const suggested = (field) => {
          const each = (d.rightsize || []).map((h) => h[field]);
          return d.live && each.length && each.every((v) => v !== null) ? d.live * each.reduce((a, b) => a + b, 0) : null;
        };
        chart(this.charts, "cpu", "CPU, all pods", "cpu", d, d.series, { request: sum("cpu", "request"), limit: sum("cpu", "limit"), suggested: suggested("cpu_request") });
        chart(this.charts, "memory", "Memory, all pods", "memory", d, d.series, { request: sum("memory", "request"), limit: sum("memory", "limit"), suggested: suggested("memory_request") });
        clear(this.tbody);
        d.pods.forEach((p) => this.tbody.append(podRow(p)));
        resort(this.table);
      },
    },
    create: {
      build(frame, parts, params) {
        if (actions) actions.createView(frame, params);
        else frame.append(el("h1", { text: "Create" }), el("p", { text: "Creating objects needs the dashboard in Kubernetes mode." }));
      },
      async update() {},
    },
    namespace: {
      build(frame, parts, params) {
        this.ns = parts[1];
        heading(this, frame, parts, params, "Namespace", "namespace-name", this.ns);
        this.info = el("p", { id: "namespace-info" });
        chartsAndPods(this, frame, POD_HEADERS, "Pods", "pods-in-" + this.ns);
      },
      restyle() { clear(this.charts); },
      async update() {
        const d = await api("namespaces/" + encodeURIComponent(this.ns) + "?range=" + encodeURIComponent(this.range));
        const n = d.namespace;
        this.info.textContent = counted(n.pods, "pod") + " · CPU " + cpu(n.cpu) + " · Memory " + mem(n.memory);
        chart(this.charts, "cpu", "CPU", "cpu", d, d.series, {});
        chart(this.charts, "memory", "Memory", "memory", d, d.series, {});
        const pods = await api("pods?namespace=" + encodeURIComponent(this.ns));
        clear(this.tbody);
        pods.items.forEach((p) => this.tbody.append(podRow(p)));
        resort(this.table);
        this.workloads(pods.items);
      },
      // The namespace's workloads, from its pods' owners (Kubernetes mode: host pods have none).
      workloads(items) {
        const found = new Map();
        for (const p of items) {
          if (!p.owner) continue;
          const key = p.owner.kind + "/" + p.owner.name;
          const w = found.get(key) || { kind: p.owner.kind, name: p.owner.name, pods: 0, cpu: 0, memory: 0 };
          w.pods += 1; w.cpu += p.cpu.used || 0; w.memory += p.memory.used || 0;
          found.set(key, w);
        }
        if (!this.workloadTable) {
          if (!found.size) return;
          this.workloadTable = table(["Kind", "Name", { text: "Pods", num: 1 }, { text: "CPU", num: 1 }, { text: "Memory", num: 1 }]);
          this.workloadTable.table.id = "workloads-table";
          this.table.table.closest(".scroll").after(el("h2", { text: "Workloads" }), el("div", { class: "scroll" }, this.workloadTable.table));
        }
        const t = this.workloadTable;
        clear(t.tbody);
        for (const w of found.values()) {
          const to = href(["workloads", this.ns, w.kind, w.name]);
          const tr = rowLink(el("tr"), to);
          tr.append(el("td", { text: w.kind }), el("td", {}, el("a", { href: to, text: w.name })),
            el("td", { class: "num", text: w.pods }), el("td", { class: "num", "data-sort": w.cpu, text: cpu(w.cpu) }),
            el("td", { class: "num", "data-sort": w.memory, text: mem(w.memory) }));
          t.tbody.append(tr);
        }
        resort(t);
      },
    },
    // Every running container's requests beside what its last 7 days suggest, largest
    // change first: the table of `kubepulse recommend`, a row per pod's container.
    rightsizing: {
      build(frame, parts, params) {
        frame.append(el("h1", { text: "Right-sizing" }), el("p", { class: "hint",
          text: "What each running container requests, beside what its last 7 days of use suggest: " +
            "CPU at the 95th percentile of use, memory at the peak working set + 15% " +
            "(the rule of kubepulse recommend; 100 points of 15 minutes are needed). " +
            "Largest change first; a row opens the pod's charts, with the suggestion drawn on them." }));
        const form = el("form", { class: "filters", role: "search" });
        this.namespace = el("input", { name: "namespace", value: params.get("namespace") || "" });
        form.append(el("label", {}, "Namespace", this.namespace), el("button", { type: "submit", text: "Apply" }));
        form.addEventListener("submit", (e) => {
          e.preventDefault();
          const q = this.namespace.value ? { namespace: this.namespace.value } : {};
          history.replaceState(null, "", href(["rightsizing"], q));
          state.viewKey = location.hash;
          this.update().catch(fail);
        });
        this.count = el("p", { class: "hint", id: "rightsize-count" });
        const num = (text, title) => ({ text, num: 1, title });
        this.table = table(["Namespace", "Pod", "Container",
          num("CPU request"), num("Suggested", "CPU: p95 of 7 days"), num("Change"),
          num("Memory request"), num("Suggested", "memory: peak of 7 days + 15%"), num("Change"), "Note"]);
        this.table.table.id = "rightsize-table";
        frame.append(form, this.count, downloads(this.table, "rightsizing"), el("div", { class: "scroll" }, this.table.table));
      },
      async update() {
        const ns = this.namespace.value;
        const d = await newest(this, "rightsizing" + (ns ? "?namespace=" + encodeURIComponent(ns) : ""));
        this.count.textContent = !d.history ? "Right-sizing needs the history, which this dashboard does not keep."
          : d.total + " running " + (d.total === 1 ? "pod" : "pods") + (d.total > d.pods ? ", first " + d.pods + " read: choose a namespace" : "");
        const t = thresholds();
        clear(this.table.tbody);
        for (const r of d.items) {
          const target = href(["pods", r.namespace, r.pod], { range: "7d" });
          const tr = rowLink(el("tr", { "data-container": r.namespace + "/" + r.pod + "/" + r.name }), target);
          const value = (v, show) => el("td", { class: "num", "data-sort": v ?? -1, text: v === null ? "–" : show(v) });
          const change = (v, show) => el("td", { class: "num" + (v > 0 ? " over" : ""), "data-sort": v ?? 0,
            text: v === null ? "–" : (v > 0 ? "+" : v < 0 ? "−" : "") + show(Math.abs(v)) });
          const far = !r.reason && [[r.cpu_current, r.cpu_request], [r.memory_current, r.memory_request]]
            .some(([now, suggested]) => (pct(now, suggested) ?? 0) >= t.farAbove);
          const note = el("td", { text: r.reason ? r.reason : "" });
          if (far) note.append(el("span", { class: "badge warn", text: "request far above use",
            title: "a request at " + t.farAbove + "% or more of the suggestion (Settings)" }));
          tr.append(el("td", { text: r.namespace }), el("td", {}, el("a", { href: target, text: r.pod })),
            el("td", { text: r.name }),
            value(r.cpu_current, cpu), value(r.cpu_request, cpu), change(r.cpu_change, cpu),
            value(r.memory_current, mem), value(r.memory_request, mem), change(r.memory_change, mem), note);
          this.table.tbody.append(tr);
        }
        resort(this.table);
      },
    },
    settings: {
      build(frame) {
        frame.append(el("h1", { text: "Settings" }));
        const t = thresholds();
        const form = el("form", { id: "badge-settings" });
        const fields = [
          ["nearLimit", "\u201cmemory near limit\u201d from this % of the memory limit"],
          ["overRequest", "\u201cover request\u201d above this % of the CPU or memory request"],
          ["farAbove", "\u201crequest far above use\u201d from this % of the request suggested by 7 days of use"],
        ];
        for (const [key, text] of fields) {
          const input = el("input", { type: "number", name: key, min: "1", max: "1000", step: "1", value: String(t[key]), required: "" });
          form.append(el("p", {}, el("label", {}, text + " ", input)));
        }
        const saved = el("span", { id: "settings-saved", role: "status" });
        form.append(el("p", {}, el("button", { type: "submit", text: "Save" }), " ",
          el("button", { type: "button", id: "settings-reset", text: "Defaults" }), " ", saved));
        form.addEventListener("submit", (e) => {
          e.preventDefault();
          if (!form.reportValidity()) return;
          const values = {};
          for (const [key] of fields) values[key] = Number(form.elements[key].value);
          localStorage.setItem(BADGE_KEY, JSON.stringify(values));
          saved.textContent = "Saved in this browser.";
        });
        form.querySelector("#settings-reset").addEventListener("click", () => {
          localStorage.removeItem(BADGE_KEY);
          for (const [key] of fields) form.elements[key].value = String(BADGE_DEFAULTS[key]);
          saved.textContent = "Defaults restored.";
        });
        frame.append(el("h2", { text: "Badges" }), form);
      },
      async update() {},
    },
    namespaces: {
      build(frame) {
        frame.append(el("h1", { text: "Namespaces" }));
        this.body = el("div");
        frame.append(this.body);
      },
      async update() {
        const d = await api("namespaces");
        clear(this.body);
        this.body.append(namespaceTable(d.items));
      },
    },
  };
  function namespaceTable(items) {
    const t = table(["Namespace", { text: "Pods", num: 1 }, { text: "CPU", num: 1 }, { text: "Memory", num: 1 }]);
    for (const n of items) {
      const tr = rowLink(el("tr"), href(["namespaces", n.name]));
      tr.append(el("td", {}, el("a", { href: href(["namespaces", n.name]), text: n.name })),
        el("td", { class: "num", text: n.pods }), el("td", { class: "num", text: cpu(n.cpu) }),
        el("td", { class: "num", text: mem(n.memory) }));
      t.tbody.append(tr);
    }
    return t.table;
  }

  // A failed update says why in the page itself, above what it last showed.
  function fail(err) {
    if (err === STALE) return;
    setStatus("Update failed", true);
    let box = document.getElementById("view-error");
    if (!box) {
      box = el("p", { id: "view-error", class: "error banner", role: "alert" });
      main.prepend(box);
    }
    box.textContent = err.message;
  }
  function recovered() {
    const box = document.getElementById("view-error");
    if (box) box.remove();
  }

  // -- the loop: route on hash changes, refresh every poll interval --------------------
  async function refresh() {
    if (!state.view) return;
    // Keep keyboard focus on the same row across a refresh.
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.href : null;
    const view = state.view;
    try {
      await view.update();
      if (view !== state.view) return;  // left meanwhile: its outcome is not the page's
      recovered();
      setStatus("Updated " + new Date().toLocaleTimeString());
      if (focused) {
        const again = main.querySelector('tr[data-href="' + CSS.escape(focused) + '"]');
        if (again) again.focus();
      }
    } catch (err) { if (view === state.view) fail(err); }  // fail() drops STALE
  }
  function route() {
    const { parts, params } = parseHash();
    let name = parts[0];
    if (name === "nodes" && parts.length > 1) name = "node";
    if (name === "pods" && parts.length > 2) name = "pod";
    if (name === "namespaces" && parts.length > 1) name = "namespace";
    if (name === "workloads") name = parts.length === 4 ? "workload" : "overview";
    if (!views[name]) name = "overview";
    const key = location.hash;
    if (key === state.viewKey && state.view) return;
    params.delete("from"); params.delete("to");
    state.viewKey = key;
    destroyCharts();
    clear(main);
    const view = Object.create(views[name]);
    view.build(main, parts, params);
    state.view = view;
    document.querySelectorAll("nav a").forEach((a) => {
      if (a.dataset.view === parts[0]) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    document.body.dataset.view = name;
    refresh();
  }

  // -- theme ---------------------------------------------------------------------------
  function isDark() {
    const set = document.documentElement.dataset.theme;
    if (set) return set === "dark";
    return window.matchMedia("(prefers-color-scheme: dark)").matches;
  }
  function applyTheme(theme) {
    if (theme) document.documentElement.dataset.theme = theme;
    document.getElementById("theme-toggle").textContent = isDark() ? "Light" : "Dark";
    document.getElementById("theme-toggle").setAttribute("aria-pressed", String(isDark()));
  }

  // Keys, as in Headlamp and GitHub: "/" filters pods, "g o" / "g n" / "g p" / "g s"
  // go to the overview, nodes, pods, namespaces. Not while typing in a field.
  function shortcuts() {
    let pending = false;
    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, textarea, select")) return;
      if (pending) {
        pending = false;
        const to = { o: "#/overview", n: "#/nodes", p: "#/pods", s: "#/namespaces", r: "#/rightsizing" }[e.key];
        if (to) { e.preventDefault(); go(to); }
        return;
      }
      if (e.key === "g") { pending = true; return; }
      if (e.key === "/") {
        e.preventDefault();
        if (parseHash().parts[0] !== "pods" || parseHash().parts.length > 1) go("#/pods");
        setTimeout(() => { const f = main.querySelector("input[name=name]"); if (f) f.focus(); });
      }
    });
  }

  async function start() {
    applyTheme(localStorage.getItem("kubepulse-theme"));
    document.getElementById("theme-toggle").addEventListener("click", () => {
      const next = isDark() ? "light" : "dark";
      localStorage.setItem("kubepulse-theme", next);
      applyTheme(next);
      // Charts take their colours when made: make them again, then refill.
      destroyCharts();
      if (state.view && state.view.restyle) state.view.restyle();
      refresh();
    });
    document.getElementById("logout").addEventListener("click", async () => {
      await fetch("logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": state.csrf } });
      location.href = "login";
    });
    const session = await api("session");
    state.csrf = session.csrf_token;
    state.pollMs = Math.max(1000, session.poll_interval * 1000);
    document.getElementById("user").textContent = session.user;
    if (session.cluster && window.KubepulseActions) {
      actions = window.KubepulseActions({ el, clear, api, send, href, go });
      document.getElementById("nav-create").hidden = false;
    }
    window.addEventListener("hashchange", route);
    shortcuts();
    route();
    if (session.live_updates && window.EventSource) live(); else poll();
  }
  function poll() {
    if (!state.timer) state.timer = setInterval(refresh, state.pollMs);
    document.body.dataset.updates = "polling";
  }
  // Live updates: the server says when a scrape cycle's usage is ready to serve (server-
  // sent events) and the page refreshes then; while that stream is down, it polls.
  function live() {
    poll();
    const events = new EventSource("api/cycles");
    events.addEventListener("open", () => {
      clearInterval(state.timer);
      state.timer = null;
      document.body.dataset.updates = "live";
    });
    events.addEventListener("cycle", () => refresh());
    events.addEventListener("error", poll); // the browser opens it again by itself
  }
  start().catch(fail);
})();
