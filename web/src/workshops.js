// Instructors' pages: the workshops list with a create form (#/workshops) and one workshop's
// dashboard (#/w/<id>): its state and clock, join codes with a link and QR code, the
// participants grid (state, last seen) with bulk actions and their per-participant results,
// adding participants one by one or from a CSV (the API's per-line report shown as it words it).
import { call, postText, query, ApiError } from "./api.js";
import { h, mount, field, notice, stateBadge, relativeTime, formatTime } from "./dom.js";
import { qrSvg } from "./qr.js";
import { progressSection } from "./steps.js";
import { noticesPanel, costsPanel } from "./workshop_panels.js";
import { activityFeed } from "./activity.js";

const ENDED = ["ending", "completed", "cancelled"];
const wPath = (id, rest = "") => `/v1/workshops/${encodeURIComponent(id)}${rest}`;

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return hh ? `${hh} h ${String(mm).padStart(2, "0")} min` : mm ? `${mm} min ${String(ss).padStart(2, "0")} s` : `${ss} s`;
}

function table(caption, headers, rows, cls = "") {
  return h("div", { class: "table-wrap" }, h("table", { class: cls },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

// ---- the list ------------------------------------------------------------------------------

export function workshopsPage(el, ctx) {
  const status = h("div", { "aria-live": "polite" });
  const listEl = h("div");
  const ended = h("input", { type: "checkbox", id: "workshops-ended", onchange: () => load() });

  async function load() {
    try {
      const r = await call("GET", "/v1/workshops" + query({ include_ended: ended.checked ? "true" : "" }));
      const rows = (r.workshops || []).map((w) => h("tr", {},
        h("td", {}, h("a", { class: "session-name", href: `#/w/${encodeURIComponent(w.id)}` }, w.name)),
        h("td", {}, w.title || ""), h("td", {}, stateBadge(w.state)),
        h("td", { class: "num" }, `${w.participants.count}/${w.participants.max}`),
        h("td", { class: "num" }, `${w.environments.ready} ready · ${w.environments.creating} creating · ${w.environments.failed} failed`),
        h("td", {}, formatTime(w.start_at)), h("td", {}, duration(w.seconds_remaining))));
      mount(listEl, rows.length
        ? table("Workshops", ["Name", "Title", "State", "Participants", "Environments", "Start", "Left"], rows)
        : h("p", { class: "empty" }, "No workshops yet."));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthenticated();
      mount(status, notice("error", e.message));
    }
  }

  mount(el, h("div", { class: "page-head" }, h("h1", {}, "Workshops"),
              h("label", { class: "check" }, ended, "include ended")),
        status, listEl, createWorkshopForm(ctx));
  load();
  return { close() {} };
}

function createWorkshopForm(ctx) {
  const name = h("input", { id: "ws-name", name: "name", required: true, pattern: "[a-z0-9]([a-z0-9-]*[a-z0-9])?", placeholder: "k8s-101" });
  const title = h("input", { id: "ws-title", name: "title", placeholder: "Kubernetes 101" });
  const template = h("select", { id: "ws-template", name: "template", required: true });
  const startIn = h("input", { id: "ws-start", name: "start_in", type: "number", min: "0", value: "0" });
  const hours = h("input", { id: "ws-hours", name: "hours", type: "number", min: "0.25", step: "0.25", value: "2" });
  const max = h("input", { id: "ws-max", name: "max", type: "number", min: "1", max: "1000", value: "30" });
  const status = h("div", { "aria-live": "polite" });
  call("GET", "/v1/templates").then((r) => {
    const names = (r.templates || []).map((t) => t.metadata?.name ?? t.name);
    mount(template, names.length ? names.map((n) => h("option", { value: n }, n))
                                 : h("option", { value: "" }, "no templates: apply one first"));
  }).catch((e) => mount(status, notice("error", e.message)));
  const form = h("form", { class: "create card", "aria-labelledby": "ws-create-title" },
    h("h2", { id: "ws-create-title" }, "New workshop"),
    h("div", { class: "row" }, field("Name", name), field("Title", title), field("Template", template)),
    h("div", { class: "row" }, field("Starts in (minutes)", startIn), field("Duration (hours)", hours),
      field("Participants at most", max)),
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Create workshop")), status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    mount(status);
    try {
      const w = await call("POST", "/v1/workshops", {
        name: name.value.trim(), title: title.value.trim() || undefined, template: template.value,
        start_at: new Date(Date.now() + Number(startIn.value) * 60000).toISOString().replace(/\.\d+Z$/, "Z"),
        duration_seconds: Math.round(Number(hours.value) * 3600), max_participants: Number(max.value) });
      ctx.navigate(`#/w/${encodeURIComponent(w.id)}`);
    } catch (e) { mount(status, notice("error", e.message)); }
  });
  return form;
}

// ---- one workshop ---------------------------------------------------------------------------

export function workshopPage(el, ctx, id) {
  const head = h("div", { class: "session-head" });
  const summary = h("dl", { class: "summary" });
  const status = h("div", { "aria-live": "polite" });
  const codes = codesSection(id);
  const grid = participantsSection(id, () => refresh());
  const progress = progressSection(id);
  const notices = noticesPanel(id);
  const costs = costsPanel(id);
  let workshop = null;

  async function refresh() {
    try {
      workshop = await call("GET", wPath(id));
      render();
      await grid.load();
      await progress.load();
      await Promise.all([notices.load(), costs.load()]);
      if (status.querySelector(".notice.error")) mount(status);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthenticated();
      mount(status, notice("error", e.message));
    }
  }

  function render() {
    const w = workshop;
    mount(head, h("div", {}, h("h1", { class: "session-title" }, w.title || w.name),
                  h("div", { class: "muted mono" }, w.name, " · ", w.id)),
          h("div", { class: "actions" }, stateBadge(w.state),
            ENDED.includes(w.state) ? null : h("button", { type: "button", class: "danger", onclick: () => finish("end") }, "End now"),
            ["scheduled", "provisioning", "active"].includes(w.state)
              ? h("button", { type: "button", class: "danger", onclick: () => finish("cancel") }, "Cancel workshop") : null));
    const item = (k, v) => (v === null || v === undefined || v === "" ? null : [h("dt", {}, k), h("dd", {}, v)]);
    mount(summary,
      item("Template", w.template),
      item("Start", `${formatTime(w.start_at)} (${relativeTime(w.start_at)})`),
      item("End", `${formatTime(w.end_at)} (${relativeTime(w.end_at)})`),
      item("Time left", duration(w.seconds_remaining)),
      item("Participants", `${w.participants.count} of ${w.participants.max}`),
      item("Environments", `${w.environments.ready} ready, ${w.environments.creating} creating, ${w.environments.failed} failed, ${w.environments.ended} ended`),
      item("When it ends", w.on_end === "stop" ? "environments are stopped (kept)" : "environments are removed"));
  }

  // Ending removes every environment (or stops them, as on_end says); cancelling removes them.
  async function finish(op) {
    const what = op === "end" ? `End ${workshop.name} now? Its environments are ${workshop.on_end === "stop" ? "stopped" : "removed"}.`
                              : `Cancel ${workshop.name}? Every environment is removed.`;
    if (!confirm(what)) return;
    mount(status);
    try {
      const r = await call("POST", wPath(id, `/${op}`), {});
      if (r.failed) mount(status, notice("error", `${r.failed} environments could not be ended yet; the server keeps trying.`));
      await refresh();
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  // The grid follows the class: participants join, sessions start, people type.
  const timer = setInterval(refresh, 5000);
  mount(el, h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/workshops" }, "Workshops"), " / ",
              h("span", { "aria-current": "page" }, id)),
        head, summary, status, codes.el, progress.el, grid.el, notices.el, costs.el);
  refresh();
  codes.load();
  return { close() { clearInterval(timer); grid.close(); } };
}

// Join codes: make one, list them, show the newest's link and QR code.
function codesSection(id) {
  const status = h("div", { "aria-live": "polite" });
  const listEl = h("div");
  const share = h("div", { class: "join-share" });
  const slots = h("input", { id: "code-slots", type: "number", min: "1", placeholder: "all seats" });
  const domains = h("input", { id: "code-domains", placeholder: "example.com (optional)" });

  const joinLink = (code) => `${location.origin}/join#${encodeURIComponent(code)}`;

  function showShare(code) {
    const link = joinLink(code);
    mount(share, qrSvg(link, `QR code of the join link for code ${code}`),
      h("div", { class: "join-text" },
        h("p", { class: "join-code mono", "aria-label": "Join code" }, code),
        h("p", {}, h("a", { href: link, class: "mono join-link" }, link)),
        h("button", { type: "button", class: "small", onclick: async () => {
          try { await navigator.clipboard.writeText(link); mount(status, notice("info", "Link copied.")); }
          catch { mount(status, notice("error", "The browser did not allow copying; select the link instead.")); }
        } }, "Copy link")));
  }

  async function load() {
    try {
      const r = await call("GET", wPath(id, "/codes"));
      const list = r.codes || [];
      const live = list.filter((c) => !c.revoked);
      if (live.length) showShare(live[live.length - 1].code); else mount(share);
      mount(listEl, list.length ? table("Join codes", ["Code", "Used", "Expires", "Domains", "State", ""],
        list.map((c) => h("tr", {}, h("td", { class: "mono" }, c.code), h("td", { class: "num" }, `${c.used}/${c.slots}`),
          h("td", {}, c.expires_at ? relativeTime(c.expires_at) : "with the workshop"),
          h("td", {}, (c.email_domains || []).join(", ")), h("td", {}, c.revoked ? "revoked" : c.one_time ? "one-time" : "open"),
          h("td", { class: "row-actions" },
            c.revoked ? null : h("button", { type: "button", class: "small", onclick: () => showShare(c.code) }, "Show"),
            c.revoked ? null : h("button", { type: "button", class: "small danger", "aria-label": `Revoke code ${c.code}`,
              onclick: () => revoke(c.code) }, "Revoke")))), "codes")
        : h("p", { class: "empty" }, "No join codes yet."));
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  async function revoke(code) {
    try { await call("DELETE", wPath(id, `/codes/${encodeURIComponent(code)}`)); await load(); }
    catch (e) { mount(status, notice("error", e.message)); }
  }

  const form = h("form", { class: "row" },
    field("Slots", slots), field("E-mail domains", domains),
    h("button", { type: "submit" }, "New join code"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    mount(status);
    try {
      const body = {};
      if (slots.value) body.slots = Number(slots.value);
      const d = domains.value.split(/[\s,]+/).filter(Boolean);
      if (d.length) body.email_domains = d;
      const c = await call("POST", wPath(id, "/codes"), body);
      await load();
      showShare(c.code);
    } catch (e) { mount(status, notice("error", e.message)); }
  });
  const el = h("section", { class: "card section", "aria-labelledby": "codes-title" },
    h("h2", { id: "codes-title" }, "Join"), share, form, status, listEl);
  return { el, load };
}

const BULK = [
  ["pause", "Pause"], ["resume", "Resume"], ["checkpoint", "Checkpoint…"], ["reset", "Reset…"],
  ["extend", "Extend 15 min"],
];

// The participants grid with selection and bulk actions, and the add / import forms.
function participantsSection(id, refreshWorkshop) {
  const status = h("div", { "aria-live": "polite" });
  const gridEl = h("div");
  const resultsEl = h("div", { "aria-live": "polite" });
  const selected = new Set();
  let participants = [];

  const feed = activityFeed(id);
  async function load() {
    const r = await call("GET", wPath(id, "/participants"));
    participants = r.participants || [];
    for (const pid of [...selected]) if (!participants.some((p) => p.id === pid)) selected.delete(pid);
    render();
  }

  function render() {
    const all = h("input", { type: "checkbox", "aria-label": "Select every participant",
      checked: participants.length > 0 && selected.size === participants.length,
      onchange: (ev) => { for (const p of participants) ev.target.checked ? selected.add(p.id) : selected.delete(p.id); render(); } });
    const rows = participants.map((p) => h("tr", { dataset: { participant: p.id } },
      h("td", {}, h("input", { type: "checkbox", "aria-label": `Select ${p.name}`, checked: selected.has(p.id),
        onchange: (ev) => { ev.target.checked ? selected.add(p.id) : selected.delete(p.id); } })),
      h("td", { class: "participant-name" }, p.name),
      h("td", {}, p.email || ""),
      h("td", {}, p.session ? stateBadge(p.session.state) : h("span", { class: "muted" }, "no environment yet")),
      h("td", { class: "last-seen" }, isOnline(p) ? h("span", { class: "online" }, "online") : null,
        isOnline(p) ? " " : null, p.last_seen_at ? relativeTime(p.last_seen_at) : "never"),
      h("td", { class: "mono" }, p.session ? h("a", { href: `#/as/${encodeURIComponent(p.user_id)}/s/${encodeURIComponent(p.session.id)}/terminal`,
        "aria-label": `Open the environment of ${p.name}` }, p.session.id) : ""),
      h("td", { class: "row-actions" },
        h("button", { type: "button", class: "small", "aria-label": `New access link for ${p.name}`, onclick: () => accessLink(p) }, "Access link"),
        h("button", { type: "button", class: "small danger", "aria-label": `Remove ${p.name}`, onclick: () => remove(p) }, "Remove"))));
    // The grid is rebuilt on every refresh: keep the keyboard's place in it.
    const focused = gridEl.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
    mount(gridEl, participants.length
      ? table("Participants", [all, "Name", "E-mail", "Environment", "Last seen", "Session", "Actions"], rows, "participants")
      : h("p", { class: "empty" }, "No participants yet: add them below or hand out a join code."));
    if (focused) gridEl.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
  }

  async function accessLink(p) {
    try {
      const r = await call("POST", wPath(id, `/participants/${encodeURIComponent(p.id)}/access-link`));
      const url = r.access_url.startsWith("/") ? location.origin + r.access_url : r.access_url;
      mount(resultsEl, notice("info", `Access link for ${p.name} (replaces any earlier one): ${url}`));
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  async function remove(p) {
    if (!confirm(`Remove ${p.name}? Their environment is terminated and their sign-in ends.`)) return;
    try { await call("DELETE", wPath(id, `/participants/${encodeURIComponent(p.id)}`)); await refreshWorkshop(); }
    catch (e) { mount(status, notice("error", e.message)); }
  }

  async function bulk(op) {
    mount(status);
    const body = {};
    if (selected.size) body.participants = [...selected];
    if (op === "checkpoint") {
      const name = prompt("Checkpoint name for every selected environment", "after-lab");
      if (!name) return;
      body.name = name;
    } else if (op === "reset") {
      const name = prompt("Restore which checkpoint? Leave empty for a fresh environment from the template.", "");
      if (name === null) return;
      if (name) body.name = name;
    } else if (op === "extend") {
      body.seconds = 900;
    }
    try {
      const r = await call("POST", wPath(id, `/${op}`), body);
      const byId = Object.fromEntries(participants.map((p) => [p.id, p.name]));
      mount(resultsEl, h("h3", { class: "bulk-results-head" }, `${op}: ${r.results.length - r.failed} ok, ${r.failed} failed`),
        table(`Results of ${op}`, ["Participant", "Session", "Result"], r.results.map((x) => h("tr", {},
          h("td", {}, byId[x.participant] || x.participant), h("td", { class: "mono" }, x.session || ""),
          h("td", { class: x.ok ? "result-ok" : "result-failed" }, x.ok ? "ok" : `${x.error.code}: ${x.error.message}`))),
          "bulk-results"));
      await refreshWorkshop();
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  const bulkBar = h("div", { class: "actions bulk", role: "group", "aria-label": "Act on the selected participants (none selected: everyone)" },
    BULK.map(([op, label]) => h("button", { type: "button", onclick: () => bulk(op), dataset: { op } }, label)));
  const el = h("section", { class: "section", "aria-labelledby": "participants-title" },
    h("div", { class: "row" }, h("h2", { id: "participants-title" }, "Participants"), h("span", { class: "spacer" }), bulkBar),
    h("p", { class: "hint" }, "Actions apply to the selected participants, or to everyone when none is selected."),
    status, gridEl, resultsEl, feed.el, addForms(id, refreshWorkshop));
  return { el, load, close: feed.close };
}

// Online: their environment was touched (terminal bytes, exec, any API call) in the last two
// minutes.
const ONLINE_MS = 2 * 60 * 1000;
const isOnline = (p) => p.last_seen_at && Date.now() - Date.parse(p.last_seen_at) < ONLINE_MS;

// One participant by name and e-mail, or many from a CSV file or pasted text.
function addForms(id, refreshWorkshop) {
  const status = h("div", { "aria-live": "polite" });
  const name = h("input", { id: "add-name", required: true, placeholder: "Ada Lovelace" });
  const email = h("input", { id: "add-email", type: "email", placeholder: "ada@example.com" });
  const csvFile = h("input", { id: "csv-file", type: "file", accept: ".csv,text/csv" });
  const csvText = h("textarea", { id: "csv-text", rows: "4", spellcheck: "false", placeholder: "name,email\nAda Lovelace,ada@example.com" });
  const one = h("form", { class: "row" }, field("Name", name), field("E-mail", email), h("button", { type: "submit" }, "Add participant"));
  one.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    mount(status);
    try {
      await call("POST", wPath(id, "/participants"), { name: name.value.trim(), email: email.value.trim() || undefined });
      name.value = ""; email.value = "";
      await refreshWorkshop();
    } catch (e) { mount(status, notice("error", e.message)); }
  });
  const csv = h("form", { class: "csv-import" }, field("CSV file", csvFile), field("or paste CSV", csvText),
    h("button", { type: "submit" }, "Import"));
  csv.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    mount(status);
    const body = csvFile.files[0] ? await csvFile.files[0].text() : csvText.value;
    try {
      const r = await postText(wPath(id, "/participants/import"), body, "text/csv");
      mount(status, notice("info", `Imported ${r.participants.length} participant${r.participants.length === 1 ? "" : "s"}.`));
      csvText.value = ""; csvFile.value = "";
      await refreshWorkshop();
    } catch (e) { mount(status, csvReport(e.message)); }
  });
  return h("div", { class: "card section add-participants" }, h("h3", {}, "Add participants"), one,
           h("h3", {}, "Import a CSV"), h("p", { class: "hint" }, "A header line naming the columns name and email, then one participant a line. Any bad line imports nobody."),
           csv, status);
}

// The API's refusal of an import, with its per-line list ("line 4: name is empty; line 9: …")
// as a list, one line an item.
function csvReport(message) {
  const colon = message.indexOf(": line ");
  if (colon < 0) return notice("error", message);
  const lines = message.slice(colon + 2).split(/; (?=line \d+:)/);
  return h("div", { class: "notice error csv-report", role: "alert" },
    h("p", {}, message.slice(0, colon)), h("ul", {}, lines.map((l) => h("li", {}, l))));
}

