// The console's entry: sign-in, the app shell and a hash router (#/, #/new, #/s/<id>/<tab>,
// #/workshops, #/w/<id>, #/me, #/tokens, #/audit, #/admin/users). Hash routes keep every page
// at / on the server, so `hutch serve` serves one document (also at /join and /access, the
// participants' ways in, which need no token).
import { call, setCsrf, actFor, ApiError } from "./api.js";
import { h, mount, field, notice } from "./dom.js";
import { sessionsPage } from "./sessions.js";
import { createPage } from "./create.js";
import { sessionPage } from "./session.js";
import { workshopsPage, workshopPage } from "./workshops.js";
import { joinPage, openAccessLink, myWorkshopPage } from "./participant.js";
import { usersPage, tokensPage, auditPage } from "./admin.js";

const root = document.getElementById("app");
let me = null;
// The page being shown; its cleanup (close sockets, streams) runs before the next one.
let current = null;

// A participant who just joined or opened their link: signed in by the cookie now.
let welcome = null;
function participantSignedIn(signed, joined) {
  me = signed.user;
  setCsrf(signed.csrf);
  welcome = joined.access_url
    ? `Welcome, ${joined.participant.name}. To come back later, keep your own access link: ${
        joined.access_url.startsWith("/") ? location.origin + joined.access_url : joined.access_url}`
    : null;
  history.replaceState(null, "", "/#/me");
  shell();
}

async function boot() {
  if (location.pathname === "/join") return joinPage(root, participantSignedIn);
  if (location.pathname === "/access") return openAccessLink(root, participantSignedIn);
  try {
    const s = await call("GET", "/v1/console/session");
    me = s.user;
    setCsrf(s.csrf);
    shell();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signIn();
    mount(root, notice("error", e.message));
  }
}

function signIn(message) {
  if (current) current.close?.();
  current = null;
  const token = h("input", { type: "password", name: "token", id: "token", required: true,
                             autocomplete: "current-password", spellcheck: "false",
                             placeholder: "hutch_…" });
  const status = h("div", { class: "signin-status", "aria-live": "polite" },
                   message ? notice("info", message) : null);
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "signin card", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to hutch"),
    field("API token", token,
          "An admin's token is in DATA_DIR/admin.token; users get theirs from POST /v1/tokens."),
    submit, status,
    h("p", { class: "hint" }, "Joining a workshop? ", h("a", { href: "/join" }, "Enter your join code"), "."));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    mount(status);
    try {
      const r = await call("POST", "/v1/console/signin", { token: token.value.trim() });
      token.value = "";
      me = r.user;
      setCsrf(r.csrf);
      if (location.hash.startsWith("#/signin")) location.hash = "#/";
      shell();
    } catch (e) {
      mount(status, notice("error", e.message));
    } finally {
      submit.disabled = false;
    }
  });
  mount(root, h("main", { class: "signin-page" }, form));
  token.focus();
}

async function signOut() {
  try {
    await call("POST", "/v1/console/signout");
  } catch (e) {
    alert(e.message);
    return;
  }
  me = null;
  setCsrf(null);
  location.hash = "#/";
  signIn("Signed out.");
}

let content = null;

function shell() {
  content = h("main", { id: "content", tabindex: "-1" });
  const header = h("header", { class: "topbar" },
    h("a", { class: "skip", href: "#content", onclick: (e) => { e.preventDefault(); content.focus(); } },
      "Skip to content"),
    h("a", { class: "brand", href: "#/" }, h("img", { src: "/assets/favicon.svg", alt: "" }), "hutch"),
    h("nav", { "aria-label": "Main" }, navLinks()),
    h("span", { class: "spacer" }),
    h("span", { class: "whoami", title: "Signed in user" }, me.name, me.admin ? " (admin)" : ""),
    h("button", { type: "button", class: "ghost", onclick: signOut }, "Sign out"));
  mount(root, header, content);
  route();
}

function navLinks() {
  if (me.role === "participant") return [h("a", { href: "#/me" }, "My workshop")];
  const teaches = me.admin || me.role === "instructor";
  return [
    h("a", { href: "#/" }, "Sessions"),
    h("a", { href: "#/new" }, "New session"),
    teaches ? h("a", { href: "#/workshops" }, "Workshops") : null,
    h("a", { href: "#/tokens" }, "Tokens"),
    h("a", { href: "#/audit" }, "Audit"),
    me.admin ? h("a", { href: "#/admin/users" }, "Users") : null,
  ];
}

// A session expired or was revoked elsewhere: back to sign-in instead of a page of errors.
export function onUnauthenticated() { signIn("Your sign-in expired; sign in again."); }

function route() {
  if (!me || !content) return;
  if (current) current.close?.();
  current = null;
  const hash = location.hash.replace(/^#/, "") || "/";
  let parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  // #/as/<user>/s/<id>/<tab>: a session page acting for another user (an instructor for a
  // participant of their workshop); every other page acts for no one.
  const actingFor = parts[0] === "as" && parts[1] && parts[2] === "s" ? parts[1] : null;
  actFor(actingFor);
  if (actingFor) parts = parts.slice(2);
  const prefix = actingFor ? `/as/${encodeURIComponent(actingFor)}` : "";
  const ctx = { me, prefix, actingFor, navigate: (to) => { location.hash = to; }, onUnauthenticated };
  if (parts.length === 0 && me.role === "participant") parts.push("me");
  if (parts.length === 0) current = sessionsPage(content, ctx);
  else if (parts[0] === "new") current = createPage(content, ctx);
  else if (parts[0] === "s" && parts[1]) current = sessionPage(content, ctx, parts[1], parts[2] || "terminal");
  else if (parts[0] === "workshops") current = workshopsPage(content, ctx);
  else if (parts[0] === "w" && parts[1]) current = workshopPage(content, ctx, parts[1]);
  else if (parts[0] === "me") current = myWorkshopPage(content, ctx);
  else if (parts[0] === "tokens") current = tokensPage(content, ctx);
  else if (parts[0] === "audit") current = auditPage(content, ctx);
  else if (parts[0] === "admin" && parts[1] === "users") current = usersPage(content, ctx);
  else mount(content, notice("error", `No page ${hash}`));
  if (welcome && parts[0] === "me") {
    content.prepend(notice("info", welcome));
    welcome = null;
  }
  markCurrentNav(hash);
}

// aria-current on the nav link of the page shown.
function markCurrentNav(hash) {
  for (const a of document.querySelectorAll(".topbar nav a")) {
    const target = a.getAttribute("href").slice(1);
    const on = target === "/" ? hash === "/" || hash.startsWith("/s/")
      : hash === target || hash.startsWith(target + "/") || (target === "/workshops" && hash.startsWith("/w/"));
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

window.addEventListener("hashchange", route);
boot();
