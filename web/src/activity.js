// The instructor's live activity feed of a workshop (docs/workshops.md, "Activity"): the latest
// records from GET /v1/workshops/{id}/activity, then each new one as the server stores it
// (Server-Sent Events, resumed after a blip from the last id by EventSource itself). Commands are
// shown as text, exactly as the participant's shell ran them; filters by family and participant.
import { call, withOwner } from "./api.js";
import { h, mount, field } from "./dom.js";

const KEEP = 500;  // records held for the filters; the oldest go first
const FAMILIES = [
  ["", "everything"], ["shell", "commands"], ["git", "git"], ["kubectl", "kubectl"],
  ["check", "checks"], ["milestone", "milestones"], ["exec", "exec"], ["file", "files"],
  ["process", "processes"], ["session", "environments"],
];
const family = (type) => type.split(".")[0];

function describe(r) {
  if (r.type.startsWith("session.")) return `environment ${r.type.slice(8)}`;
  if (r.type.startsWith("milestone.")) return `milestone ${r.type.slice(10)}${r.command ? `: ${r.command}` : ""}`;
  if (r.type.startsWith("check.")) return `check ${r.type.slice(6)}`;
  if (r.type.startsWith("file.")) return `${r.type.slice(5)} ${r.command}`;
  return null;  // a command: shown as code
}

export function activityFeed(workshopId) {
  const list = h("ol", { class: "feed", "aria-live": "polite", "aria-label": "Activity" });
  const kind = h("select", { id: "feed-kind", onchange: () => render() },
    FAMILIES.map(([v, t]) => h("option", { value: v }, t)));
  const who = h("input", { id: "feed-who", type: "search", placeholder: "a participant's name", oninput: () => render() });
  const state = h("span", { class: "muted feed-state" });
  let records = [];
  let source = null;
  let closed = false;

  function item(r) {
    const text = describe(r);
    const exit = r.exit_code !== null && r.exit_code !== undefined && r.exit_code !== 0
      ? h("span", { class: "feed-exit" }, ` (exit ${r.exit_code})`) : null;
    return h("li", { class: `feed-${family(r.type)}`, dataset: { type: r.type } },
      h("time", { datetime: r.at, class: "muted" }, new Date(r.at).toLocaleTimeString()), " ",
      h("span", { class: "feed-name" }, r.participant || r.session), " ",
      text !== null ? h("span", { class: "feed-text" }, text)
                    : h("code", { class: "feed-command" }, r.command), exit);
  }

  function render() {
    const q = who.value.trim().toLowerCase();
    const shown = records.filter((r) => (!kind.value || family(r.type) === kind.value) &&
      (!q || (r.participant || "").toLowerCase().includes(q))).slice(-200).reverse();
    mount(list, shown.length ? shown.map(item)
      : h("li", { class: "empty" }, records.length ? "Nothing matches." : "Nothing yet: commands, checks and milestones show here as they happen."));
  }

  function add(r) {
    if (records.length && r.id <= records[records.length - 1].id) return;  // seen already
    records.push(r);
    if (records.length > KEEP) records = records.slice(-KEEP);
  }

  async function start() {
    const base = `/v1/workshops/${encodeURIComponent(workshopId)}/activity`;
    try {
      // The last day's, in pages, keeping the newest.
      const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
      let after = "";
      for (let i = 0; i < 20; i++) {
        const r = await call("GET", `${base}?limit=1000&since=${encodeURIComponent(since)}${after ? `&after=${after}` : ""}`);
        for (const rec of r.activity) add(rec);
        if (!r.next_page_token) break;
        after = r.next_page_token;
      }
    } catch (e) {
      mount(state, e.message);
    }
    render();
    if (closed) return;
    const last = records.length ? records[records.length - 1].id : 0;
    source = new EventSource(withOwner(`${base}?follow=true&after=${last}`));
    source.addEventListener("activity", (msg) => {
      try { add(JSON.parse(msg.data)); render(); } catch { /* a partial line */ }
    });
    source.onopen = () => mount(state, "live");
    source.onerror = () => mount(state, source.readyState === EventSource.CLOSED ? "stopped" : "reconnecting…");
  }

  const el = h("section", { class: "card section", "aria-labelledby": "feed-title" },
    h("div", { class: "row" }, h("h3", { id: "feed-title" }, "Activity"), state, h("span", { class: "spacer" }),
      field("Show", kind), field("Who", who)),
    list);
  render();
  start();
  return { el, close() { closed = true; source?.close(); } };
}
