// kubepulse dashboard, Kubernetes mode: actions on the cluster, each made by the server
// with the signed-in user's own token. Buttons appear only for what the API's
// SelfSubjectAccessReviews allow; whatever the API refuses is shown in its own words.
// Every name, YAML text and log line goes into the page through textContent or a form
// field's value, never as markup. Loaded before app.js, which calls this with its helpers.
"use strict";

window.KubepulseActions = function (kit) {
  const { el, clear, api, send, href, go } = kit;

  function query(params) {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value) q.set(key, value);
    return q.toString();
  }
  function label(target) { return target.kind + " " + target.name; }
  function say(box, text, bad) {
    box.textContent = text;
    box.className = "message" + (bad ? " error" : "");
  }
  function messageLine(id) { return el("p", { class: "message", id, role: "status", "aria-live": "polite" }); }

  // -- an in-page confirmation: the first button asks, the second does it ------------------
  function confirmed(text, question, action, danger) {
    const ask = el("button", { type: "button", class: danger ? "danger" : null, text });
    const yes = el("button", { type: "button", class: danger ? "danger" : null, text: "Yes, " + text.toLowerCase() });
    const no = el("button", { type: "button", text: "Cancel" });
    const box = el("span", { class: "confirm", hidden: true, role: "group" }, el("span", { text: question }), " ", yes, " ", no);
    const close = () => { box.hidden = true; ask.hidden = false; ask.focus(); };
    ask.addEventListener("click", () => { ask.hidden = true; box.hidden = false; yes.focus(); });
    no.addEventListener("click", close);
    box.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
    yes.addEventListener("click", async () => { box.hidden = true; ask.hidden = false; await action(); });
    return el("span", {}, ask, box);
  }

  // -- the YAML editor -----------------------------------------------------------------
  function editor(target, where) {
    const q = query(target);
    const text = el("textarea", { id: "yaml-editor", class: "yaml", rows: 24, spellcheck: "false", "aria-label": "YAML of " + label(target) });
    const status = messageLine("yaml-message");
    async function load() {
      try {
        const d = await api("yaml?" + q);
        text.value = d.yaml;
        say(status, "Loaded resourceVersion " + d.resourceVersion + ".");
      } catch (err) { say(status, err.message, true); }
    }
    async function save() {
      const r = await send("PUT", "yaml?" + q, { yaml: text.value });
      if (r.ok) {
        text.value = r.body.yaml;
        say(status, "Saved: resourceVersion " + r.body.resourceVersion + ".");
      } else if (r.status === 409) {
        const said = /[.!]$/.test(r.body.error) ? r.body.error : r.body.error + ".";
        say(status, said + " Reload, then make your change again.", true);
      } else say(status, r.body.error, true);
    }
    const panel = el("section", { class: "panel", id: "yaml-panel", "aria-label": "Edit " + label(target) },
      el("h3", { text: "Edit " + label(target) }), text,
      el("p", { class: "buttons" },
        el("button", { type: "button", id: "yaml-save", text: "Save", onclick: save }), " ",
        el("button", { type: "button", text: "Reload", onclick: load }), " ",
        el("button", { type: "button", text: "Close", onclick: () => { panel.remove(); } })),
      status);
    clear(where);
    where.append(panel);
    load().then(() => text.focus());
  }

  // -- the logs panel ------------------------------------------------------------------
  function logs(namespace, pod, containers, where) {
    const pick = el("select", { id: "logs-container" }, ...containers.map((c) => el("option", { value: c, text: c })));
    const tail = el("input", { id: "logs-tail", type: "number", min: 1, max: 10000, value: 100 });
    const out = el("pre", { id: "logs-text", class: "logs", tabindex: 0, "aria-label": "Log lines" });
    const status = messageLine("logs-message");
    async function load() {
      const q = query({ namespace, name: pod, container: pick.value, tailLines: tail.value });
      const resp = await fetch("api/logs?" + q, { credentials: "same-origin", cache: "no-store" });
      if (resp.status === 401) { location.href = "login"; return; }
      if (!resp.ok) {
        const body = await resp.json().catch(() => ({ error: resp.statusText }));
        out.textContent = "";
        say(status, body.error, true);
        return;
      }
      out.textContent = await resp.text();
      say(status, "Last " + tail.value + " lines of " + pick.value + ".");
    }
    pick.addEventListener("change", load);
    const form = el("form", { class: "filters" },
      el("label", {}, "Container", pick), el("label", {}, "Lines", tail),
      el("button", { type: "submit", id: "logs-refresh", text: "Refresh" }));
    form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
    const panel = el("section", { class: "panel", id: "logs-panel", "aria-label": "Logs" },
      el("h3", { text: "Logs" }), form, status, out,
      el("p", { class: "buttons" }, el("button", { type: "button", text: "Close", onclick: () => { panel.remove(); } })));
    clear(where);
    where.append(panel);
    load().then(() => pick.focus());
  }

  // -- the buttons for one object: only those SelfSubjectAccessReview allows -------------
  async function buttons(target, where, status, after, first) {
    const a = (await api("can?" + query(target))).actions;
    const row = el("p", { class: "buttons", "data-kind": target.kind });
    if (first) first(row, a);
    if (a.edit) row.append(el("button", { type: "button", class: "action-edit", text: "Edit YAML", onclick: () => editor(target, where) }), " ");
    if (a.scale) {
      const replicas = el("input", { type: "number", min: 0, class: "scale-replicas", "aria-label": "Replicas of " + label(target) });
      api("scale?" + query(target)).then((d) => { replicas.value = d.replicas; }).catch((err) => say(status, err.message, true));
      const scale = async () => {
        const r = await send("POST", "scale?" + query(target), { replicas: Number(replicas.value) });
        if (r.ok) say(status, label(target) + " scaled to " + r.body.replicas + ".");
        else say(status, r.body.error, true);
      };
      row.append(el("label", { class: "inline" }, "Replicas ", replicas), " ",
        el("button", { type: "button", class: "action-scale", text: "Scale", onclick: scale }), " ");
    }
    if (a.restart) {
      row.append(confirmed("Restart", "Replace every pod of " + label(target) + "?", async () => {
        const r = await send("POST", "restart?" + query(target), {});
        if (r.ok) say(status, label(target) + " restarted at " + r.body.restartedAt + ".");
        else say(status, r.body.error, true);
      }, false), " ");
    }
    if (a.delete) {
      row.append(confirmed("Delete", "Delete " + label(target) + "? This cannot be undone.", async () => {
        const r = await send("DELETE", "object?" + query(target));
        if (!r.ok) { say(status, r.body.error, true); return; }
        say(status, label(target) + " deleted.");
        after(row);
      }, true));
    }
    if (!row.childNodes.length) row.append(el("span", { class: "hint", text: "You may not change this " + target.kind + "." }));
    return row;
  }

  // -- on the pod view: the pod's actions and logs, and its controller's actions --------
  function podPanel(namespace, name) {
    const pod = { apiVersion: "v1", kind: "Pod", namespace, name };
    const rows = el("div");
    const status = messageLine("actions-message");
    const work = el("div", { id: "action-work" });
    const box = el("section", { class: "actions", id: "pod-actions", "aria-label": "Actions" }, rows, status, work);
    (async () => {
      try {
        const info = await api("workload?" + query({ namespace, name }));
        const withLogs = (row, a) => {
          if (!a.logs || !info.containers.length) return;
          row.append(el("button", { type: "button", class: "action-logs", text: "Logs", onclick: () => logs(namespace, name, info.containers, work) }), " ");
        };
        rows.append(await buttons(pod, work, status, () => go(href(["pods"], { namespace })), withLogs));
        if (info.owner) {
          const owner = info.owner;
          rows.append(el("h3", {}, "Controlled by " + owner.kind + " ", el("span", { class: "owner-name", text: owner.name })),
            await buttons(owner, work, status, (row) => row.remove()));
        }
      } catch (err) { say(status, err.message, true); }
    })();
    return box;
  }

  // -- the create view -----------------------------------------------------------------
  function createView(frame, params) {
    frame.append(el("h1", { text: "Create from YAML" }));
    const text = el("textarea", { id: "create-yaml", class: "yaml", rows: 20, spellcheck: "false", "aria-label": "YAML to create" });
    const file = el("input", { id: "create-file", type: "file", accept: ".yaml,.yml,.json,application/json,text/yaml" });
    const namespace = el("input", { id: "create-namespace", value: params.get("namespace") || "default" });
    const status = messageLine("create-message");
    const results = el("ul", { id: "create-results" });
    file.addEventListener("change", async () => {
      if (file.files.length) text.value = await file.files[0].text();
    });
    const form = el("form", { class: "create" },
      el("p", { class: "hint", text: "One or more objects, separated by ---. Objects without a namespace go to the namespace below." }),
      text,
      el("p", { class: "filters" },
        el("label", {}, "Or read a file", file),
        el("label", {}, "Namespace", namespace),
        el("button", { type: "submit", id: "create-submit", text: "Create" })));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clear(results);
      const r = await send("POST", "create", { yaml: text.value, namespace: namespace.value });
      say(status, r.ok ? "Created." : r.body.error, !r.ok);
      for (const item of r.body.results || []) {
        const where = item.namespace ? " in " + item.namespace : "";
        results.append(el("li", { class: item.ok ? "" : "error", text: item.kind + " " + item.name + where + ": " + (item.ok ? "created" : item.error) }));
      }
    });
    frame.append(form, status, results);
  }

  return { podPanel, createView };
};
