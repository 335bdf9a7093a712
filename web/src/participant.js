// Participants' pages. /join (the code may come in the fragment: /join#K7QX-M2PD) and /access#<secret>
// sign a participant in without any token typed: the API answers a participant token, which the
// console trades at once for its HttpOnly cookie (POST /v1/console/signin) and forgets. Then one
// screen (#/me): the workshop, time left, notices, the current step of its scenario (steps.js)
// and the terminal of their environment.
import { call, ApiError } from "./api.js";
import { h, mount, field, notice, stateBadge } from "./dom.js";
import { terminalsPanel } from "./terminal.js";
import { duration } from "./workshops.js";
import { stepPanel } from "./steps.js";

// The join form: code → name and e-mail → signed in. onSignedIn(signin answer, join answer).
export function joinPage(root, onSignedIn) {
  const fromLink = decodeURIComponent(location.hash.replace(/^#/, ""));
  const code = h("input", { id: "join-code", name: "code", required: true, autocomplete: "off", spellcheck: "false",
                            placeholder: "ABCD-EFGH", value: /^[A-Za-z0-9-]{4,20}$/.test(fromLink) ? fromLink : "" });
  const name = h("input", { id: "join-name", name: "name", required: true, autocomplete: "name", placeholder: "Ada Lovelace" });
  const email = h("input", { id: "join-email", name: "email", type: "email", autocomplete: "email", placeholder: "ada@example.com" });
  const status = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, "Join");
  const form = h("form", { class: "signin join card", "aria-labelledby": "join-title" },
    h("h1", { id: "join-title" }, "Join a workshop"),
    field("Join code", code, "Your instructor shows it, or it came in your link."),
    field("Your name", name), field("E-mail", email, "Only if your instructor asks for it."),
    submit, status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    mount(status);
    try {
      const joined = await call("POST", "/v1/join", { code: code.value.trim(), name: name.value.trim(),
                                                      email: email.value.trim() || undefined });
      const signed = await call("POST", "/v1/console/signin", { token: joined.token });
      onSignedIn(signed, joined);
    } catch (e) {
      mount(status, notice("error", e.message));
    } finally {
      submit.disabled = false;
    }
  });
  mount(root, h("main", { class: "signin-page" }, form));
  (code.value ? name : code).focus();
}

// /access#<secret>: the secret leaves the address bar first, then buys a participant sign-in.
export async function openAccessLink(root, onSignedIn) {
  const secret = location.hash.replace(/^#/, "");
  history.replaceState(null, "", "/access");
  const status = h("div", { "aria-live": "polite" }, notice("info", "Opening your workshop…"));
  mount(root, h("main", { class: "signin-page" }, h("div", { class: "signin card" }, h("h1", {}, "Workshop access"), status)));
  try {
    if (!secret) throw new ApiError(400, "invalid_argument", "this access link has no secret after #: ask your instructor for the link again");
    const opened = await call("POST", "/v1/access", { secret });
    const signed = await call("POST", "/v1/console/signin", { token: opened.token });
    onSignedIn(signed, opened);
  } catch (e) {
    mount(status, notice("error", e.message));
  }
}

// The participant's one screen.
export function myWorkshopPage(el, ctx) {
  const title = h("h1", { class: "session-title" }, "Your workshop");
  const clock = h("span", { class: "clock", "aria-live": "off" });
  const state = h("span");
  const status = h("div", { "aria-live": "polite" });
  const notices = h("section", { class: "notices", "aria-labelledby": "notices-title", hidden: true },
                    h("h2", { id: "notices-title" }, "Notices"), h("ul", { class: "notice-list" }));
  const envState = h("div", { class: "env-state", "aria-live": "polite" });
  const termHost = h("div");
  const step = stepPanel();
  let mine = null;
  let endsAt = 0;
  let terminals = null;
  let noticesSupported = true;

  function tick() {
    if (!mine) return;
    const left = Math.max(0, (endsAt - Date.now()) / 1000);
    clock.textContent = `${duration(left)} left`;
  }

  async function refresh() {
    try {
      mine = await call("GET", "/v1/me/workshop");
      endsAt = Date.now() + mine.seconds_remaining * 1000;
      title.textContent = mine.workshop.title || mine.workshop.name;
      // The top bar names them as they joined, not by their generated user name (p-…).
      const whoami = document.querySelector(".topbar .whoami");
      if (whoami) whoami.textContent = mine.participant.name;
      mount(state, stateBadge(mine.workshop.state));
      tick();
      const s = mine.participant.session;
      if (s && s.state === "running") {
        mount(envState);
        step.load();
        if (!terminals) {
          terminals = terminalsPanel(s.id);
          mount(termHost, terminals.el);
          terminals.show();
        }
      } else if (!terminals) {
        const say = s ? `Your environment is ${s.state}${s.error ? ": " + s.error : ""}. It opens here when it is running.`
                      : `Your environment is made when the workshop starts (${new Date(mine.workshop.start_at).toLocaleString()}).`;
        // A live region: said again only when it changes.
        if (envState.textContent !== say) mount(envState, notice("info", say));
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthenticated();
      mount(status, notice("error", e.message));
    }
  }

  // Notices are the caller's workshop.notice events (GET /v1/me/notices, oldest first): read
  // from a cursor, so each poll fetches only what arrived since. A server without that route
  // (404) shows no notices section rather than an error.
  let noticesAfter = 0;
  let noticesBusy = false;
  async function loadNotices() {
    if (!noticesSupported || noticesBusy) return;
    noticesBusy = true;
    try {
      const r = await call("GET", "/v1/me/notices" + (noticesAfter ? `?after=${noticesAfter}` : ""));
      const list = r.events || [];
      if (!list.length) return;
      noticesAfter = list.at(-1).id;
      notices.hidden = false;
      // Newest first: what the instructor just said is on top.
      notices.querySelector("ul").prepend(...list.reverse().map((n) => h("li", { class: "notice info" },
        h("time", { class: "muted", datetime: n.at }, new Date(n.at).toLocaleTimeString(), " "),
        h("strong", { class: "notice-subject" }, n.data?.subject ?? ""), " ",
        h("span", { class: "notice-body" }, n.data?.body ?? ""))));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) { noticesSupported = false; notices.hidden = true; }
    } finally { noticesBusy = false; }
  }

  const ticker = setInterval(tick, 1000);
  const poller = setInterval(() => { refresh(); loadNotices(); }, 5000);
  mount(el, h("div", { class: "session-head" }, h("div", {}, title), h("div", { class: "actions" }, state, clock)),
        status, notices, step.el, envState, termHost);
  refresh();
  step.load();
  loadNotices();
  return { close() { clearInterval(ticker); clearInterval(poller); terminals?.close(); } };
}
