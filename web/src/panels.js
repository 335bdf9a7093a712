// The session page's other tabs: processes, services and ports, checkpoints and fork, history.
import { call, text, sessionPath, query, withOwner } from "./api.js";
import { h, mount, field, notice, stateBadge, formatBytes, formatTime } from "./dom.js";
import { followEvents } from "./events.js";

function table(caption, headers, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

// Background processes: start one, list them, read (or follow) the output, signal.
export function processesPanel(id) {
  const status = h("div", { "aria-live": "polite" });
  const listEl = h("div");
  const output = h("pre", { class: "output", tabindex: "0", "aria-label": "Process output" });
  const outputTitle = h("h3", {}, "Output");
  const command = h("input", { name: "command", id: "proc-command", placeholder: "python3 -m http.server 8000", spellcheck: "false" });
  const tag = h("input", { name: "tag", id: "proc-tag", placeholder: "web (optional)", pattern: "[A-Za-z0-9._-]+" });
  let follow = null;

  async function load() {
    try {
      const r = await call("GET", sessionPath(id, "/processes"));
      const rows = (r.processes || []).slice().reverse().map((p) => {
        const name = p.tag || String(p.pid);
        return h("tr", {},
          h("td", { class: "mono" }, String(p.pid)), h("td", {}, p.tag || ""),
          h("td", { class: "mono cmd" }, (p.cmd || []).join(" ")),
          h("td", {}, stateBadge(p.state), p.state !== "running" && p.exit_code !== null ? ` ${p.exit_code}` : "",
            p.signal ? ` (${p.signal})` : ""),
          h("td", {}, formatTime(p.started_at)),
          h("td", { class: "row-actions" },
            h("button", { type: "button", class: "small", onclick: () => show(name, false) }, "Output"),
            h("button", { type: "button", class: "small", onclick: () => show(name, true) }, "Follow"),
            p.state === "running" ? h("button", { type: "button", class: "small danger",
              onclick: () => signal(name, "TERM") }, "Stop") : null));
      });
      mount(listEl, rows.length ? table("Processes", ["PID", "Tag", "Command", "State", "Started", "Actions"], rows)
                                : h("p", { class: "empty" }, "No background processes."));
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  async function show(name, doFollow) {
    if (follow) follow.abort();
    follow = null;
    outputTitle.textContent = `Output of ${name}${doFollow ? " (following)" : ""}`;
    output.textContent = "";
    const path = sessionPath(id, `/processes/${encodeURIComponent(name)}/output`) + query({ follow: doFollow ? "true" : "" });
    if (!doFollow) {
      try { output.textContent = await text(path); } catch (e) { mount(status, notice("error", e.message)); }
      return;
    }
    const ctl = new AbortController();
    follow = ctl;
    try {
      const res = await fetch(withOwner(path), { credentials: "same-origin", signal: ctl.signal });
      if (!res.ok) throw new Error((await res.json()).error.message);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        output.textContent += dec.decode(value, { stream: true });
        output.scrollTop = output.scrollHeight;
      }
      outputTitle.textContent = `Output of ${name} (ended)`;
      load();
    } catch (e) {
      if (e.name !== "AbortError") mount(status, notice("error", e.message));
    }
  }

  async function signal(name, sig) {
    try { await call("POST", sessionPath(id, `/processes/${encodeURIComponent(name)}/signal`), { signal: sig }); load(); }
    catch (e) { mount(status, notice("error", e.message)); }
  }

  const form = h("form", { class: "row", onsubmit: async (ev) => {
    ev.preventDefault();
    mount(status);
    if (!command.value.trim()) return;
    const body = { command: command.value.trim() };
    if (tag.value.trim()) body.tag = tag.value.trim();
    try {
      const p = await call("POST", sessionPath(id, "/processes"), body);
      command.value = "";
      tag.value = "";
      await load();
      show(p.tag || String(p.pid), true);
    } catch (e) { mount(status, notice("error", e.message)); }
  } }, field("Command", command), field("Tag", tag), h("button", { type: "submit", class: "primary" }, "Start"));

  const el = h("section", { "aria-label": "Processes" }, h("h2", {}, "Start a background process"), form, status,
    h("div", { class: "row" }, h("h2", {}, "Processes"), h("button", { type: "button", class: "ghost", onclick: load }, "Refresh")),
    listEl, outputTitle, output);
  return { el, show: load, close() { if (follow) follow.abort(); } };
}

// Services and ports; "Open" makes a signed URL and opens the app in a new tab.
export function servicesPanel(id) {
  const status = h("div", { "aria-live": "polite" });
  const servicesEl = h("div");
  const portsEl = h("div");

  // With the server's proxy_base_domain the port has a host of its own ({port}-{session}.<base>):
  // the app then runs on its own origin, away from the console's. Without, it is served under
  // the console's origin with a CSP sandbox, which also keeps its own later requests cookie-less.
  async function open(port, host) {
    try {
      const r = await call("POST", sessionPath(id, `/ports/${port}/url`), { ttl_seconds: 3600 });
      const signed = r.url.slice(r.url.indexOf("?"));
      const url = host ? `${location.protocol}//${host}${location.port ? ":" + location.port : ""}/${signed}` : r.url;
      // noopener: the app's page gets no handle on the console's window.
      window.open(url, "_blank", "noopener,noreferrer");
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  async function load() {
    mount(status);
    try {
      const [s, p] = await Promise.all([call("GET", sessionPath(id, "/services")), call("GET", sessionPath(id, "/ports"))]);
      const services = s.services || [];
      mount(servicesEl, services.length ? table("Services", ["Name", "State", "Health", "Port", "Restarts", "Command"],
        services.map((v) => h("tr", {}, h("td", {}, v.name), h("td", {}, stateBadge(v.state)),
          h("td", {}, typeof v.health === "object" && v.health ? (v.health.status || JSON.stringify(v.health)) : (v.health || "")),
          h("td", { class: "mono" }, v.port ? String(v.port) : ""), h("td", { class: "num" }, String(v.restarts ?? "")),
          h("td", { class: "mono cmd" }, Array.isArray(v.command) ? v.command.join(" ") : (v.command || "")))))
        : h("p", { class: "empty" }, "No services."));
      const ports = p.ports || [];
      mount(portsEl, ports.length ? table("Ports", ["Port", "Listening", "Service", "Public", "Origin", "Open"],
        ports.map((x) => h("tr", {}, h("td", { class: "mono" }, String(x.port)),
          h("td", {}, x.listening === null ? "—" : x.listening ? "yes" : "no"),
          h("td", {}, x.service || ""), h("td", {}, x.public ? "public" : "private"),
          h("td", { class: x.host ? "mono" : "" }, x.host || "sandboxed (path routing)"),
          h("td", {}, h("button", { type: "button", class: "small", "aria-label": `Open port ${x.port} in a new tab`,
            onclick: () => open(x.port, x.host) }, "Open ↗")))))
        : h("p", { class: "empty" }, "Nothing listens yet. Start a server in the terminal or as a process, then refresh."));
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  const el = h("section", { "aria-label": "Services and ports" },
    h("div", { class: "row" }, h("h2", {}, "Services"), h("button", { type: "button", class: "ghost", onclick: load }, "Refresh")),
    status, servicesEl, h("h2", {}, "Ports"), portsEl,
    h("p", { class: "hint" }, "Open makes a signed URL valid for an hour and opens the app in a new tab. ",
      "Apps get an origin of their own only when the server has proxy_base_domain; without it they run sandboxed: ",
      "their pages load, but their own scripts' requests carry no cookie."));
  return { el, show: load, close() {} };
}

// Checkpoints (create, restore, delete) and fork.
export function checkpointsPanel(id, ctx, refreshSession) {
  const status = h("div", { "aria-live": "polite" });
  const listEl = h("div");
  const name = h("input", { name: "checkpoint", id: "ckpt-name", placeholder: "before-upgrade", pattern: "[a-z0-9]([a-z0-9-]*[a-z0-9])?" });
  const count = h("input", { type: "number", name: "count", id: "fork-count", min: 1, max: 100, value: 1 });
  const prefix = h("input", { name: "name_prefix", id: "fork-prefix", placeholder: "try (optional)" });

  const act = async (fn) => {
    mount(status);
    try { await fn(); } catch (e) { mount(status, notice("error", e.message)); }
  };

  async function load() {
    await act(async () => {
      const r = await call("GET", sessionPath(id, "/checkpoints"));
      const rows = (r.checkpoints || []).map((c) => h("tr", {},
        h("td", {}, c.name), h("td", {}, c.valid === false ? "integrity check failed" : "valid"),
        h("td", { class: "num" }, formatBytes(c.data_bytes)), h("td", {}, formatTime(c.created_at)),
        h("td", { class: "row-actions" },
          h("button", { type: "button", class: "small", onclick: () => act(async () => {
            if (!confirm(`Restore ${c.name}? Files written since are lost and processes restart.`)) return;
            await call("POST", sessionPath(id, `/checkpoints/${encodeURIComponent(c.name)}/restore`));
            mount(status, notice("info", `Restored ${c.name}.`));
            refreshSession();
          }) }, "Restore"),
          h("button", { type: "button", class: "small danger", onclick: () => act(async () => {
            if (!confirm(`Delete checkpoint ${c.name}?`)) return;
            await call("DELETE", sessionPath(id, `/checkpoints/${encodeURIComponent(c.name)}`));
            load();
          }) }, "Delete"))));
      mount(listEl, rows.length ? table("Checkpoints", ["Name", "Integrity", "Data", "Created", "Actions"], rows)
                                : h("p", { class: "empty" }, "No checkpoints."));
    });
  }

  const create = h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); act(async () => {
    const c = await call("POST", sessionPath(id, "/checkpoints"), { name: name.value.trim() });
    name.value = "";
    mount(status, notice("info", `Checkpoint ${c.name} made (${c.freeze_ms} ms frozen).`));
    await load();
  }); } }, field("Name", name), h("button", { type: "submit", class: "primary" }, "Make checkpoint"));

  const fork = h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); act(async () => {
    const body = { count: Number(count.value) || 1 };
    if (prefix.value.trim()) body.name_prefix = prefix.value.trim();
    const r = await call("POST", sessionPath(id, "/fork"), body);
    const made = r.sessions || [];
    mount(status, h("div", { class: "notice info", role: "status" }, "Forked: ",
      made.map((s, i) => [i ? ", " : "", h("a", { href: `#/s/${encodeURIComponent(s.id)}` }, s.name)])));
  }); } }, field("Copies", count), field("Name prefix", prefix), h("button", { type: "submit" }, "Fork"));

  const el = h("section", { "aria-label": "Checkpoints and fork" },
    h("h2", {}, "Checkpoints"), create, status, listEl,
    h("h2", {}, "Fork"), h("p", { class: "hint" }, "New sessions that start from this one's files as they are now."), fork);
  return { el, show: load, close() {} };
}

// The state history and the session's events, the latter followed live.
export function historyPanel(id) {
  const status = h("div", { "aria-live": "polite" });
  const historyEl = h("div");
  const eventsBody = h("tbody");
  let stop = null;

  const eventRow = (e) => h("tr", {}, h("td", {}, formatTime(e.at)), h("td", { class: "mono" }, e.type),
    h("td", {}, e.reason || ""), h("td", {}, e.actor || ""),
    h("td", { class: "mono cmd" }, e.data && Object.keys(e.data).length ? JSON.stringify(e.data) : ""));

  async function load() {
    try {
      const [hist, ev] = await Promise.all([call("GET", sessionPath(id, "/history")),
                                            call("GET", "/v1/events" + query({ session: id, limit: 1000 }))]);
      mount(historyEl, table("State history", ["At", "From", "To", "Reason", "Actor"],
        (hist.history || []).map((x) => h("tr", {}, h("td", {}, formatTime(x.at)), h("td", {}, x.from || "—"),
          h("td", {}, stateBadge(x.to)), h("td", {}, x.reason || ""), h("td", {}, x.actor || "")))));
      mount(eventsBody, (ev.events || []).map(eventRow));
      if (!stop) {
        const last = (ev.events || []).at(-1);
        stop = followEvents(last ? { session: id, after: String(last.id) } : { session: id },
                            (e) => eventsBody.append(eventRow(e)));
      }
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  const el = h("section", { "aria-label": "History and events" }, status,
    h("h2", {}, "State history"), historyEl,
    h("h2", {}, "Events"), h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "sr-only" }, "Events of this session"),
      h("thead", {}, h("tr", {}, ["At", "Type", "Reason", "Actor", "Data"].map((t) => h("th", { scope: "col" }, t)))),
      eventsBody)));
  return { el, show: load, close() { if (stop) stop(); } };
}
