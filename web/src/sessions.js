// The sessions list: filters (state, label, search), live state from the events stream.
import { call, query, ApiError } from "./api.js";
import { h, mount, field, notice, stateBadge, relativeTime, formatTime } from "./dom.js";
import { followEvents } from "./events.js";

const STATES = ["", "scheduled", "pending", "provisioning", "running", "paused", "stopping",
                "stopped", "error", "terminating", "terminated", "cancelled"];

export function labelChips(labels) {
  const entries = Object.entries(labels || {});
  if (!entries.length) return null;
  return h("ul", { class: "chips", "aria-label": "Labels" },
           entries.map(([k, v]) => h("li", { class: "chip" }, `${k}=${v}`)));
}

export function sessionsPage(el, ctx) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const state = h("select", { name: "state", id: "filter-state" },
                  STATES.map((s) => h("option", { value: s, selected: s === (params.get("state") || "") }, s || "any live")));
  const label = h("input", { name: "label", id: "filter-label", placeholder: "key=value",
                             value: params.get("label") || "" });
  const search = h("input", { type: "search", name: "q", id: "filter-q", placeholder: "name or id",
                              value: params.get("q") || "" });
  const deleted = h("input", { type: "checkbox", name: "include_deleted", id: "filter-deleted" });
  const live = h("span", { class: "live", "aria-live": "polite" }, "connecting…");
  const status = h("div", { class: "list-status" });
  const tbody = h("tbody");
  const more = h("button", { type: "button", class: "ghost", hidden: true }, "Load more");
  let next = "";
  let generation = 0;

  const filters = () => ({ state: state.value, label: label.value.trim(),
                           include_deleted: deleted.checked ? "true" : "" });
  // The API filters by state and label; the search box filters what was loaded, by name or id
  // (GET /v1/sessions has no name search yet).
  let loaded = [];
  const matches = (s) => {
    const q = search.value.trim().toLowerCase();
    return !q || s.name.toLowerCase().includes(q) || s.id.toLowerCase().includes(q);
  };
  function render() {
    const shown = loaded.filter(matches);
    mount(tbody, shown.map(row));
    mount(status, shown.length ? null
          : h("p", { class: "empty" }, loaded.length ? "No sessions match the search." : "No sessions match. ",
              loaded.length ? null : h("a", { href: "#/new" }, "Create one"), loaded.length ? null : "."));
  }

  async function load(append = false) {
    const mine = ++generation;
    try {
      const r = await call("GET", "/v1/sessions" + query({ ...filters(), limit: 50,
                                                           page_token: append ? next : "" }));
      if (mine !== generation) return;
      loaded = append ? loaded.concat(r.sessions) : r.sessions;
      next = r.next_page_token || "";
      more.hidden = !next;
      render();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthenticated();
      mount(status, notice("error", e.message));
    }
  }

  function row(s) {
    return h("tr", { dataset: { id: s.id } },
      h("td", {}, h("a", { href: `#/s/${encodeURIComponent(s.id)}`, class: "session-name" }, s.name)),
      h("td", {}, stateBadge(s.state), s.reason ? h("span", { class: "muted" }, ` ${s.reason}`) : null),
      h("td", {}, s.activity || ""),
      h("td", {}, s.image || "", s.template ? h("span", { class: "muted" }, ` (${s.template})`) : null),
      h("td", {}, labelChips(s.labels)),
      h("td", { title: formatTime(s.created_at) }, relativeTime(s.created_at)),
      h("td", { title: formatTime(s.expires_at) }, s.expires_at ? relativeTime(s.expires_at) : "—"));
  }

  let timer = null;
  const reloadSoon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => load(false), 150);
  };
  for (const input of [state, deleted]) input.addEventListener("change", reloadSoon);
  label.addEventListener("input", reloadSoon);
  search.addEventListener("input", render);
  more.addEventListener("click", () => load(true));

  const stop = followEvents({}, (ev) => {
    // A session changed: show its new state at once, and reload for ones that (dis)appear.
    const tr = tbody.querySelector(`tr[data-id="${CSS.escape(ev.session_id || "")}"]`);
    if (tr && ev.session_id) {
      call("GET", `/v1/sessions/${encodeURIComponent(ev.session_id)}`).then((s) => {
        loaded = loaded.map((x) => (x.id === s.id ? s : x));
        render();
      }).catch(reloadSoon);
    } else {
      reloadSoon();
    }
  }, (st) => { live.textContent = st === "live" ? "● live" : st; });

  mount(el,
    h("div", { class: "page-head" }, h("h1", {}, "Sessions"), live,
      h("span", { class: "spacer" }), h("a", { class: "button primary", href: "#/new" }, "New session")),
    h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); load(); } },
      field("State", state), field("Label", label), field("Search", search),
      h("label", { class: "check" }, deleted, " include deleted")),
    h("div", { class: "table-wrap" },
      h("table", { class: "sessions" },
        h("caption", { class: "sr-only" }, "Your sessions"),
        h("thead", {}, h("tr", {}, ["Name", "State", "Activity", "Image", "Labels", "Created", "Expires"]
          .map((t) => h("th", { scope: "col" }, t)))),
        tbody)),
    status, more);
  load();
  return { close() { stop(); clearTimeout(timer); } };
}
