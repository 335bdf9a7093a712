// Account pages: users (admins: #/admin/users), your tokens (#/tokens) and the audit trail
// (#/audit: everything for an admin, what you did and what was done to your objects otherwise).
import { call, query, ApiError } from "./api.js";
import { h, mount, field, notice, formatTime, relativeTime } from "./dom.js";

const ROLES = ["user", "instructor", "admin"];
const SCOPES = ["sessions:read", "sessions:write", "exec", "files", "admin", "metrics"];

function table(caption, headers, rows, cls = "") {
  return h("div", { class: "table-wrap" }, h("table", { class: cls },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

function failed(ctx, status, e) {
  if (e instanceof ApiError && e.status === 401) return ctx.onUnauthenticated();
  mount(status, notice("error", e.message));
}

// ---- users ---------------------------------------------------------------------------------

export function usersPage(el, ctx) {
  const status = h("div", { "aria-live": "polite" });
  const listEl = h("div");
  const name = h("input", { id: "user-name", required: true, pattern: "[a-z0-9]([a-z0-9-]*[a-z0-9])?", placeholder: "alice" });
  const role = h("select", { id: "user-role" }, ROLES.map((r) => h("option", { value: r }, r)));

  async function load() {
    try {
      const r = await call("GET", "/v1/users");
      mount(listEl, table("Users", ["Name", "Role", "State", "Created", "Sessions at most", "Actions"],
        (r.users || []).map((u) => h("tr", {},
          h("td", { class: "session-name" }, u.name), h("td", {}, roleSelect(u)),
          h("td", {}, u.disabled ? "disabled" : "active"), h("td", {}, formatTime(u.created_at)),
          h("td", { class: "num" }, u.quota?.max_sessions ?? "default"),
          h("td", { class: "row-actions" },
            h("button", { type: "button", class: "small", "aria-label": `${u.disabled ? "Enable" : "Disable"} ${u.name}`,
              onclick: () => act(`/v1/users/${encodeURIComponent(u.id)}/${u.disabled ? "enable" : "disable"}`, "POST") },
              u.disabled ? "Enable" : "Disable"),
            h("button", { type: "button", class: "small", "aria-label": `New token for ${u.name}`, onclick: () => issue(u) }, "New token"),
            h("button", { type: "button", class: "small danger", "aria-label": `Delete ${u.name}`, onclick: () => {
              if (confirm(`Delete user ${u.name} and their tokens?`)) act(`/v1/users/${encodeURIComponent(u.id)}`, "DELETE");
            } }, "Delete"))))));
    } catch (e) { failed(ctx, status, e); }
  }

  function roleSelect(u) {
    const sel = h("select", { "aria-label": `Role of ${u.name}` },
      [...new Set([...ROLES, u.role])].map((r) => h("option", { value: r, selected: r === u.role }, r)));
    sel.addEventListener("change", () => act(`/v1/users/${encodeURIComponent(u.id)}`, "PATCH", { role: sel.value }));
    return sel;
  }

  async function act(path, method, body) {
    mount(status);
    try { await call(method, path, body); } catch (e) { failed(ctx, status, e); }
    await load();
  }

  async function issue(u) {
    mount(status);
    try {
      const t = await call("POST", "/v1/tokens" + query({ owner: u.id }), { name: "console" });
      mount(status, shownOnce(t, `A token for ${u.name}`));
    } catch (e) { failed(ctx, status, e); }
  }

  const form = h("form", { class: "row card" }, field("Name", name), field("Role", role),
                 h("button", { type: "submit", class: "primary" }, "Create user"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    mount(status);
    try {
      await call("POST", "/v1/users", { name: name.value.trim(), role: role.value });
      name.value = "";
      await load();
    } catch (e) { failed(ctx, status, e); }
  });
  mount(el, h("div", { class: "page-head" }, h("h1", {}, "Users")), form, status, listEl);
  load();
  return { close() {} };
}

// A new token's value: shown this once (the API never shows it again), as text to copy.
function shownOnce(t, what) {
  return h("div", { class: "notice info token-once", role: "status" },
    h("p", {}, `${what}, shown only now — copy it:`),
    h("input", { class: "mono", readonly: true, value: t.token, "aria-label": "The new token", onfocus: (e) => e.target.select() }));
}

// ---- tokens --------------------------------------------------------------------------------

export function tokensPage(el, ctx) {
  const status = h("div", { "aria-live": "polite" });
  const listEl = h("div");
  const name = h("input", { id: "token-name", required: true, placeholder: "ci" });
  const days = h("input", { id: "token-days", type: "number", min: "0", value: "90" });
  const scopeBoxes = SCOPES.filter((s) => ctx.me.scopes.includes(s)).map((s) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "scope", value: s, checked: s !== "admin" && s !== "metrics" }), s));

  async function load() {
    try {
      const r = await call("GET", "/v1/tokens");
      mount(listEl, table("Tokens", ["Name", "Scopes", "Created", "Expires", "Last used", "State", ""],
        (r.tokens || []).map((t) => h("tr", {},
          h("td", {}, t.name), h("td", {}, (t.scopes || []).join(" ")), h("td", {}, formatTime(t.created_at)),
          h("td", {}, t.expires_at ? relativeTime(t.expires_at) : "never"),
          h("td", {}, t.last_used_at ? relativeTime(t.last_used_at) : "never"),
          h("td", {}, t.revoked ? "revoked" : "active"),
          h("td", {}, t.revoked ? null : h("button", { type: "button", class: "small danger", "aria-label": `Revoke token ${t.name}`,
            onclick: () => revoke(t) }, "Revoke"))))));
    } catch (e) { failed(ctx, status, e); }
  }

  async function revoke(t) {
    if (!confirm(`Revoke token ${t.name}? Whatever uses it stops working at once.`)) return;
    try { await call("DELETE", `/v1/tokens/${encodeURIComponent(t.id)}`); } catch (e) { failed(ctx, status, e); }
    await load();
  }

  const form = h("form", { class: "card create" },
    h("div", { class: "row" }, field("Name", name), field("Expires after (days, 0: never)", days)),
    h("fieldset", {}, h("legend", {}, "Scopes"), h("div", { class: "actions" }, scopeBoxes)),
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Create token")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    mount(status);
    try {
      const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((x) => x.value);
      const t = await call("POST", "/v1/tokens", { name: name.value.trim(), scopes, ttl_seconds: Math.round(Number(days.value) * 86400) });
      name.value = "";
      mount(status, shownOnce(t, `Token ${t.name}`));
      await load();
    } catch (e) { failed(ctx, status, e); }
  });
  mount(el, h("div", { class: "page-head" }, h("h1", {}, "Tokens")),
        h("p", { class: "hint" }, "Tokens for the API and the CLI. The console's own sign-ins are listed as “console sign-in”."),
        form, status, listEl);
  load();
  return { close() {} };
}

// ---- audit trail ---------------------------------------------------------------------------

export function auditPage(el, ctx) {
  const status = h("div", { "aria-live": "polite" });
  const tbody = h("tbody");
  const user = h("input", { id: "audit-user", placeholder: "user id or name" });
  const session = h("input", { id: "audit-session", placeholder: "ses_…" });
  const since = h("input", { id: "audit-since", type: "datetime-local" });
  const more = h("button", { type: "button", class: "ghost", hidden: true }, "Load more");
  let next = "";

  async function load(append) {
    mount(status);
    try {
      const r = await call("GET", "/v1/audit" + query({
        user: user.value.trim(), session: session.value.trim(), limit: 100, page_token: append ? next : "",
        since: since.value ? new Date(since.value).toISOString().replace(/\.\d+Z$/, "Z") : "" }));
      const rows = (r.records || r.audit || []).map((a) => h("tr", {},
        h("td", {}, formatTime(a.at)), h("td", { class: "mono" }, a.user_id || "—", a.on_behalf_of ? ` for ${a.on_behalf_of}` : ""),
        h("td", { class: "mono" }, a.action), h("td", { class: "mono cmd" }, `${a.method} ${a.path}`),
        h("td", { class: "mono" }, a.object_id || ""), h("td", { class: `num status-${Math.floor(a.status / 100)}xx` }, String(a.status)),
        h("td", { class: "mono" }, a.peer || "")));
      if (append) tbody.append(...rows); else mount(tbody, rows);
      next = r.next_page_token || "";
      more.hidden = !next;
      if (!append && !rows.length) mount(status, h("p", { class: "empty" }, "No records match."));
    } catch (e) { failed(ctx, status, e); }
  }

  const form = h("form", { class: "filters" }, field("User", user), field("Session", session), field("Since", since),
                 h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
  more.addEventListener("click", () => load(true));
  mount(el, h("div", { class: "page-head" }, h("h1", {}, "Audit trail")),
        h("p", { class: "hint" }, ctx.me.admin ? "Every change anyone made, newest first." : "What you did and what was done to your objects, newest first."),
        form, status,
        h("div", { class: "table-wrap" }, h("table", { class: "audit" }, h("caption", { class: "sr-only" }, "Audit records"),
          h("thead", {}, h("tr", {}, ["At", "Who", "Action", "Request", "Object", "Status", "Peer"].map((t) => h("th", { scope: "col" }, t)))),
          tbody)), more);
  load(false);
  return { close() {} };
}
