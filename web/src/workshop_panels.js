// Two panels of the workshop dashboard (#/w/<id>): Notices (send a message to everyone or to one
// participant, and the notices sent so far) and Costs (spend so far and the projection to the
// end, for the class and per participant). Each returns {el, load}; the dashboard calls load on
// every refresh.
import { call, query } from "./api.js";
import { h, mount, field, notice, formatTime } from "./dom.js";

const wPath = (id, rest = "") => `/v1/workshops/${encodeURIComponent(id)}${rest}`;

function table(caption, headers, rows, cls) {
  return h("div", { class: "table-wrap" }, h("table", { class: cls },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

// ---- notices --------------------------------------------------------------------------------

// The sent list is the instructor's own copies of the workshop.notice events (GET
// /v1/me/notices, recipient "instructor"): one copy per participant and send, read from a
// cursor so a refresh fetches only what is new. Copies of one send share their time and kind.
export function noticesPanel(id) {
  const status = h("div", { "aria-live": "polite" });
  const listEl = h("div");
  const to = h("select", { id: "notice-to" });
  const subject = h("input", { id: "notice-subject", required: true, maxlength: "200", placeholder: "Lunch" });
  const body = h("textarea", { id: "notice-body", rows: "3", required: true, maxlength: "8000",
                               placeholder: "Back at 13:00, {name}!" });
  const sends = new Map();  // "at|kind" → {at, kind, subject, names[]}
  let after = 0;
  let participants = [];

  async function loadSent() {
    for (let more = true; more;) {
      const r = await call("GET", "/v1/me/notices" + query({ after: after || "", limit: 1000 }));
      const events = r.events || [];
      for (const e of events) {
        after = Math.max(after, e.id);
        const d = e.data || {};
        if (d.workshop !== id || d.recipient !== "instructor") continue;
        const key = `${e.at}|${d.kind}`;
        if (!sends.has(key)) sends.set(key, { at: e.at, kind: d.kind, subject: d.subject, names: [] });
        sends.get(key).names.push(d.participant_name);
      }
      more = events.length === 1000;
    }
    const rows = [...sends.values()].reverse().map((s) => h("tr", {},
      h("td", {}, formatTime(s.at)), h("td", {}, s.kind), h("td", { class: "notice-subject" }, s.subject),
      h("td", { class: "notice-to" }, s.names.length > 3 ? `${s.names.length} participants` : s.names.join(", "))));
    mount(listEl, rows.length ? table("Notices sent", ["Sent", "Kind", "Subject", "To"], rows, "notices-sent")
                              : h("p", { class: "empty" }, "No notices sent yet."));
  }

  function fillRecipients(list) {
    const key = list.map((p) => p.id + p.name).join();
    if (key === participants.map((p) => p.id + p.name).join()) return;
    participants = list;
    const chosen = to.value;
    mount(to, h("option", { value: "" }, "everyone"),
      list.map((p) => h("option", { value: p.id, selected: p.id === chosen }, p.name)));
  }

  async function load() {
    try {
      const r = await call("GET", wPath(id, "/participants"));
      fillRecipients(r.participants || []);
      await loadSent();
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  const form = h("form", { class: "notice-form" },
    h("div", { class: "row" }, field("To", to), field("Subject", subject)),
    field("Message", body, "{name}, {title} and {minutes_left} are filled in per participant."),
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Send notice")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    mount(status);
    const msg = { subject: subject.value, body: body.value };
    if (to.value) msg.participant = to.value;
    try {
      const r = await call("POST", wPath(id, "/messages"), msg);
      mount(status, notice("info", `Sent to ${r.sent} participant${r.sent === 1 ? "" : "s"}.`));
      subject.value = ""; body.value = "";
      await loadSent();
    } catch (e) { mount(status, notice("error", e.message)); }
  });
  const el = h("section", { class: "card section", "aria-labelledby": "ws-notices-title" },
    h("h2", { id: "ws-notices-title" }, "Notices"),
    h("p", { class: "hint" }, "Participants see a notice on their screen, by e-mail where the server sends mail, and you get a copy through your webhooks."),
    form, status, listEl);
  return { el, load };
}

// ---- costs ----------------------------------------------------------------------------------

// The class's projection is the spend so far carried on at its rate to end_at (docs/api.md
// "Costs"); a participant's is their total scaled by the same factor, so the rows add up to it.
export function costsPanel(id) {
  const status = h("div", { "aria-live": "polite" });
  const summary = h("dl", { class: "summary costs-summary" });
  const perEl = h("div");

  async function load() {
    try {
      const c = await call("GET", wPath(id, "/costs"));
      const money = (v) => `${Number(v || 0).toFixed(4)} ${c.currency}`;
      summary.dataset.at = c.at;  // which answer is shown (the browser test matches it)
      const factor = c.total > 0 ? c.projected_total / c.total : 0;
      const item = (k, v, cls) => [h("dt", {}, k), h("dd", { class: cls }, v)];
      mount(summary, item("Compute", money(c.compute)), item("Storage", money(c.storage)),
        item("Network", money(c.network)), item("Platform", money(c.platform)),
        item("Total so far", money(c.total), "cost-total"),
        item(`Projected at the end (${formatTime(c.end_at)})`, money(c.projected_total), "cost-projected"));
      const rows = (c.participants || []).map((p) => h("tr", {},
        // A removed participant's spending stays in the class's; the API no longer names them.
        h("td", { class: "participant-name" }, p.name ?? "a removed participant"),
        ["compute", "storage", "network", "platform", "total"].map((k) => h("td", { class: "num" }, money(p.costs[k]))),
        h("td", { class: "num" }, money(p.costs.total * factor))));
      mount(perEl, rows.length ? table("Costs per participant",
        ["Participant", "Compute", "Storage", "Network", "Platform", "Total", "Projected"], rows, "costs")
        : h("p", { class: "empty" }, "No participants yet."));
      if (status.firstChild) mount(status);
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  const el = h("section", { class: "card section", "aria-labelledby": "costs-title" },
    h("h2", { id: "costs-title" }, "Costs"),
    h("p", { class: "hint" }, "By the server's rate card, from the metered usage of every environment of this workshop, ended ones too."),
    status, summary, perEl);
  return { el, load };
}
