// One session: its state and actions on top, then tabs — terminal, files, processes, services and
// ports, checkpoints and fork, history. Tabs switch in place (the URL follows without a
// reload), so terminals stay open while another tab is shown.
import { call, sessionPath, ApiError } from "./api.js";
import { h, mount, notice, stateBadge, relativeTime, formatTime, formatBytes } from "./dom.js";
import { followEvents } from "./events.js";
import { labelChips } from "./sessions.js";
import { usageCharts } from "./chart.js";
import { terminalsPanel } from "./terminal.js";
import { filesPanel } from "./files.js";
import { processesPanel, servicesPanel, checkpointsPanel, historyPanel } from "./panels.js";

const TABS = [
  ["terminal", "Terminal"], ["files", "Files"], ["processes", "Processes"],
  ["services", "Services & ports"], ["checkpoints", "Checkpoints & fork"], ["history", "History"],
];

// Which actions a state allows (docs/api.md's state machine).
const ACTIONS = {
  running: ["pause", "stop", "restart", "keepalive"],
  paused: ["resume", "stop"],
  stopped: ["start"],
  error: ["restart"],
};

export function sessionPage(el, ctx, id, initialTab) {
  const head = h("div", { class: "session-head" });
  const summary = h("dl", { class: "summary" });
  const status = h("div", { "aria-live": "polite" });
  const tablist = h("div", { role: "tablist", class: "tabs", "aria-label": "Session" });
  const panelsEl = h("div", { class: "panels" });
  const panels = {};
  let session = null;
  let activeTab = null;

  const refresh = async () => {
    try {
      session = await call("GET", sessionPath(id));
      render();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthenticated();
      mount(status, notice("error", e.message));
    }
  };

  async function action(name) {
    mount(status);
    try {
      if (name === "delete") {
        if (!confirm(`Delete session ${session.name}? Its processes and files are removed.`)) return;
        await call("DELETE", sessionPath(session.id));
      } else if (name === "extend") {
        await call("POST", sessionPath(session.id, "/extend"), { seconds: 3600 });
      } else {
        await call("POST", sessionPath(session.id, `/${name}`));
      }
      await refresh();
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  function render() {
    const s = session;
    const acts = [...(ACTIONS[s.state] || [])];
    if (s.expires_at && !["terminated", "cancelled"].includes(s.state)) acts.push("extend");
    if (!["terminated", "cancelled", "terminating"].includes(s.state)) acts.push("delete");
    mount(head,
      h("h1", {}, h("span", { class: "session-title" }, s.name), " ", stateBadge(s.state)),
      h("div", { class: "actions" }, acts.map((a) => h("button", {
        type: "button", class: a === "delete" ? "danger" : "", onclick: () => action(a) },
        a === "extend" ? "Extend 1 h" : a[0].toUpperCase() + a.slice(1)))));
    const item = (k, v) => (v === null || v === undefined || v === "" ? null : [h("dt", {}, k), h("dd", {}, v)]);
    const r = s.resources || {};
    mount(summary,
      item("ID", h("span", { class: "mono" }, s.id)),
      item("Activity", s.activity),
      item("Reason", s.reason),
      item("Image", s.image + (s.template ? ` (template ${s.template})` : "")),
      item("Resources", `${r.cpus ?? "?"} CPU · ${r.memory_mb ?? "?"} MiB · disk ${r.disk_mb ?? "?"} MiB`),
      item("Labels", labelChips(s.labels)),
      item("Created", formatTime(s.created_at)),
      item("Expires", s.expires_at ? `${formatTime(s.expires_at)} (${relativeTime(s.expires_at)})` : null),
      item("Parent", s.parent_id ? h("a", { href: `#${ctx.prefix || ""}/s/${encodeURIComponent(s.parent_id)}` }, s.parent_id) : null),
      item("Error", s.error),
      stats);
  }

  // Stats of a running session, refreshed every few seconds while the page is open.
  const stats = h("div", { class: "stats-line" });
  const charts = usageCharts();
  async function loadStats() {
    if (!session || session.state !== "running") { mount(stats); return; }
    try {
      const st = await call("GET", sessionPath(id, "/stats"));
      charts.add(st);
      const mem = st.memory_bytes ?? st.memory?.current_bytes;
      const peak = st.memory_peak_bytes ?? st.memory?.peak_bytes;
      mount(stats, h("dt", {}, "Usage"), h("dd", {},
        `cpu ${st.cpu_seconds !== undefined ? st.cpu_seconds.toFixed(2) + " s" : "?"} · memory ${formatBytes(mem)}`
        + (peak ? ` (peak ${formatBytes(peak)})` : "") + (st.pids !== undefined ? ` · ${st.pids} processes` : "")));
    } catch { mount(stats); }
  }
  const statsTimer = setInterval(loadStats, 3000);

  function select(key, focus) {
    activeTab = key;
    for (const [k] of TABS) {
      const tab = tablist.querySelector(`#tab-${k}`);
      tab.setAttribute("aria-selected", k === key ? "true" : "false");
      tab.tabIndex = k === key ? 0 : -1;
      if (panels[k]) panels[k].el.hidden = k !== key;
    }
    if (!panels[key]) {
      panels[key] = make(key);
      panels[key].el.id = `panel-${key}`;
      panels[key].el.setAttribute("role", "tabpanel");
      panels[key].el.setAttribute("aria-labelledby", `tab-${key}`);
      panelsEl.append(panels[key].el);
    }
    panels[key].show();
    if (focus) tablist.querySelector(`#tab-${key}`).focus();
    // Keep the URL shareable without a hashchange (which would rebuild the page).
    history.replaceState(null, "", `#${ctx.prefix || ""}/s/${encodeURIComponent(id)}/${key}`);
  }

  function make(key) {
    switch (key) {
      case "terminal": return terminalsPanel(id, { watch: !!ctx.actingFor });
      case "files": return filesPanel(id);
      case "processes": return processesPanel(id);
      case "services": return servicesPanel(id);
      case "checkpoints": return checkpointsPanel(id, ctx, refresh);
      default: return historyPanel(id);
    }
  }

  for (const [key, label] of TABS) {
    tablist.append(h("button", { type: "button", role: "tab", id: `tab-${key}`, "aria-controls": `panel-${key}`,
                                 onclick: () => select(key) }, label));
  }
  tablist.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
    const i = TABS.findIndex(([k]) => k === activeTab);
    const n = (i + (ev.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length;
    select(TABS[n][0], true);
  });

  const stopEvents = followEvents({ session: id }, () => refresh().then(loadStats));

  const acting = ctx.actingFor
    ? notice("info", `Acting for ${ctx.actingFor}: what you do here is done as them, and recorded with you as the actor.`)
    : null;
  mount(el, h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
              ctx.actingFor ? h("a", { href: "#/workshops" }, "Workshops") : h("a", { href: "#/" }, "Sessions"), " / ",
              h("span", { "aria-current": "page" }, id)),
        acting,
        head, summary, charts.el, status, tablist, panelsEl);
  refresh().then(() => {
    loadStats();
    select(TABS.some(([k]) => k === initialTab) ? initialTab : "terminal");
  });
  return {
    close() {
      stopEvents();
      clearInterval(statsTimer);
      for (const p of Object.values(panels)) p.close();
    },
  };
}
