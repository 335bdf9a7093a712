// A terminal: xterm.js attached to a detachable terminal of the session (POST …/terminals,
// GET …/terminals/{tid}/ws; docs/api.md "Terminals that survive a disconnect"). The shell runs
// on in the session while no page is attached, so a dropped WebSocket (a network blip) or a
// reload reattaches to the same shell: the server first replays the scrollback, then the output
// is live. The WebSocket speaks the exec channel framing: binary messages whose first byte is
// the channel — 0 stdin, 1 stdout, 2 stderr, 3 status (JSON, last: the terminal ended),
// 4 resize (JSON {rows, cols}). The browser sends the console's cookie with the upgrade; the
// server checks its Origin.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { h } from "./dom.js";
import { call, withOwner, ApiError } from "./api.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Reconnect delays after a drop, in ms: at once first (a blip), then backing off.
const BACKOFF = [50, 250, 500, 1000, 2000, 4000, 8000];

export class TerminalView {
  // onState(text) reports "connected", "reconnecting…", "read-only", "exited with 0", ….
  // readOnly: attached with mode=observe (an instructor watching a participant's shell).
  constructor(sessionId, terminalId, onState, readOnly = false) {
    this.sessionId = sessionId;
    this.terminalId = terminalId;
    this.onState = onState;
    this.readOnly = readOnly;
    this.el = h("div", { class: "terminal-host" });
    this.term = new Terminal({
      cursorBlink: !readOnly,
      disableStdin: readOnly,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: "#111827", foreground: "#e5e7eb", cursor: "#f59e0b" },
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.ws = null;
    this.opened = false;
    this.ended = false;    // the terminal itself ended: nothing to reconnect to
    this.disposed = false;
    this.attempt = 0;
    this.retry = null;
    this.term.onData((d) => this.send(0, encoder.encode(d)));
    this.term.onBinary((d) => this.send(0, Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
    this.term.onResize(({ rows, cols }) => this.sendSize(rows, cols));
    this.resizeObserver = new ResizeObserver(() => this.refit());
  }

  // Called once the host element is in the document (xterm measures its cell size there).
  attach() {
    if (this.opened) return;
    this.opened = true;
    this.term.open(this.el);
    this.resizeObserver.observe(this.el);
    this.refit();
    this.connect();
  }

  refit() {
    if (!this.opened || this.el.offsetParent === null) return;  // hidden tab: keep its size
    try { this.fit.fit(); } catch { /* not laid out yet */ }
  }

  focus() { this.term.focus(); }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const path = `/v1/sessions/${encodeURIComponent(this.sessionId)}/terminals/${encodeURIComponent(this.terminalId)}/ws`;
    return withOwner(`${scheme}//${location.host}${path}${this.readOnly ? "?mode=observe" : ""}`);
  }

  connect() {
    if (this.disposed || this.ended) return;
    clearTimeout(this.retry);
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    if (this.attempt === 0) this.onState("connecting…");
    ws.onopen = () => {
      this.attempt = 0;
      // The server replays the scrollback next: it redraws the screen from a clean one.
      this.term.reset();
      this.sendSize(this.term.rows, this.term.cols);
      this.onState(this.readOnly ? "read-only" : "connected");
      if (!this.readOnly) this.focus();
    };
    ws.onmessage = (msg) => {
      if (typeof msg.data === "string") return;  // the protocol's server messages are binary
      const bytes = new Uint8Array(msg.data);
      if (bytes.length === 0) return;
      const channel = bytes[0], payload = bytes.subarray(1);
      if (channel === 1 || channel === 2) {
        this.term.write(payload);
      } else if (channel === 3) {
        let status = {};
        try { status = JSON.parse(decoder.decode(payload)); } catch { /* keep {} */ }
        const how = status.error ? `ended: ${status.error.message}`
                  : status.signal ? `killed by signal ${status.signal}`
                  : `exited with ${status.exit_code}`;
        this.ended = true;
        this.term.write(`\r\n\x1b[2m[the shell ${how}]\x1b[0m\r\n`);
        this.onState(how);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.ended || this.disposed) return;
      this.onState("reconnecting…");
      this.scheduleReconnect();
    };
  }

  // After a drop: is the terminal still there? Then attach again, backing off while the
  // network (or the server) is away; a terminal that is gone (ended while we were away) says so.
  scheduleReconnect() {
    const delay = BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)];
    this.attempt++;
    this.retry = setTimeout(async () => {
      if (this.disposed || this.ended) return;
      try {
        await call("GET", `/v1/sessions/${encodeURIComponent(this.sessionId)}/terminals/${encodeURIComponent(this.terminalId)}`);
      } catch (e) {
        if (e instanceof ApiError && (e.status === 404 || e.status === 401)) {
          this.ended = true;
          this.term.write(`\r\n\x1b[2m[the terminal is gone: ${e.message}]\x1b[0m\r\n`);
          this.onState("ended");
          return;
        }
        // Unreachable (offline, the server restarting): try again later.
        return this.scheduleReconnect();
      }
      this.connect();
    }, delay);
  }

  // Attach again now (the "Reconnect" button), without waiting for the backoff.
  reconnect() {
    if (this.ended || this.disposed) return;
    this.attempt = 0;
    clearTimeout(this.retry);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    this.connect();
  }

  sendSize(rows, cols) {
    if (!this.readOnly) this.send(4, encoder.encode(JSON.stringify({ rows, cols })));
  }

  send(channel, payload) {
    const ws = this.ws;
    if (this.readOnly || !ws || ws.readyState !== WebSocket.OPEN) return;
    const frame = new Uint8Array(payload.length + 1);
    frame[0] = channel;
    frame.set(payload, 1);
    ws.send(frame);
  }

  // Detaches (the terminal runs on in the session unless it is ended too).
  dispose() {
    this.disposed = true;
    clearTimeout(this.retry);
    this.resizeObserver.disconnect();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    this.term.dispose();
  }
}

// Several terminals side by side as tabs, one a detachable terminal of the session: "+" starts
// another, each tab's × ends its own. Shown again (a reload, another page), the panel lists the
// session's live terminals and attaches to each. watch (an instructor acting for a
// participant): the terminals already open are watched read-only (mode=observe) — the
// participant keeps the keyboard — and "+" starts one of the instructor's own.
export function terminalsPanel(sessionId, { watch = false } = {}) {
  const base = `/v1/sessions/${encodeURIComponent(sessionId)}/terminals`;
  const tablist = h("div", { role: "tablist", class: "term-tabs", "aria-label": "Terminals" });
  const addButton = h("button", { type: "button", class: "ghost", "aria-label": "New terminal", title: "New terminal" }, "+ New terminal");
  const stage = h("div", { class: "term-stage" });
  const state = h("span", { class: "muted term-state", "aria-live": "polite" });
  const reconnectButton = h("button", { type: "button", class: "ghost" }, "Reconnect");
  const el = h("section", { class: "terminals" },
               h("div", { class: "term-bar" }, tablist, addButton, h("span", { class: "spacer" }), state, reconnectButton),
               stage);
  const terms = [];
  let active = null;
  let counter = 0;
  let loaded = false;

  function say(text) { state.textContent = text; }

  function select(t) {
    active = t;
    for (const x of terms) {
      const on = x === t;
      x.tab.setAttribute("aria-selected", on ? "true" : "false");
      x.tab.tabIndex = on ? 0 : -1;
      x.view.el.hidden = !on;
    }
    if (!t) return;
    say(t.state || "");
    t.view.attach();
    requestAnimationFrame(() => { t.view.refit(); t.view.focus(); });
  }

  // A tab for the terminal `info` (an entry of GET …/terminals or POST's answer); readOnly: its
  // input is not sent, and × only stops watching it.
  function addTab(info, readOnly = false) {
    const n = ++counter;
    const entry = { state: "", info };
    entry.view = new TerminalView(sessionId, info.id, (s) => {
      entry.state = s;
      if (active === entry) say(s);
    }, readOnly);
    const id = `term-${n}`;
    entry.view.el.id = `${id}-panel`;
    entry.view.el.setAttribute("role", "tabpanel");
    entry.view.el.setAttribute("aria-labelledby", id);
    const label = `${info.name || `Shell ${n}`}${readOnly ? " (read-only)" : ""}`;
    const close = h("button", { type: "button", class: "tab-close",
                                "aria-label": readOnly ? `Stop watching terminal ${n}` : `Close terminal ${n}`,
                                title: readOnly ? "Stop watching (the shell runs on)" : "End this shell",
                                onclick: () => remove(entry, !readOnly) }, "×");
    entry.tab = h("button", { type: "button", role: "tab", id, "aria-controls": `${id}-panel`, class: "term-tab",
                              "data-terminal": info.id, onclick: () => select(entry) }, label);
    tablist.append(h("span", { class: "term-tab-wrap" }, entry.tab, close));
    stage.append(entry.view.el);
    terms.push(entry);
    return entry;
  }

  async function add() {
    try {
      const t = await call("POST", base, { name: `Shell ${counter + 1}` });
      select(addTab(t));
    } catch (e) {
      say(`error: ${e.message}`);
    }
  }

  // Drops the tab and, with `end`, ends its shell (and its jobs).
  async function remove(entry, end) {
    const i = terms.indexOf(entry);
    if (i < 0) return;
    terms.splice(i, 1);
    entry.view.dispose();
    entry.view.el.remove();
    entry.tab.parentNode.remove();
    if (active === entry) select(terms[Math.max(0, i - 1)] || null);
    if (!end) return;
    try { await call("DELETE", `${base}/${encodeURIComponent(entry.info.id)}`); } catch { /* gone already */ }
  }

  // The session's live terminals as tabs (oldest first); a first shell when there is none.
  async function load() {
    loaded = true;
    let list = [];
    try {
      list = (await call("GET", base)).terminals || [];
    } catch (e) {
      say(`error: ${e.message}`);
    }
    list.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
    for (const t of list) addTab(t, watch);
    if (terms.length) select(terms[0]);
    else await add();
  }

  // Arrow keys move between tabs (the tabs pattern of WAI-ARIA).
  tablist.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
    const i = terms.indexOf(active);
    const next = terms[(i + (ev.key === "ArrowRight" ? 1 : terms.length - 1)) % terms.length];
    if (next) { select(next); next.tab.focus(); }
  });
  addButton.addEventListener("click", add);
  reconnectButton.addEventListener("click", () => active && active.view.reconnect());

  return {
    el,
    // Lists and attaches the terminals when the panel is first shown.
    show() { if (!loaded) load(); else select(active); },
    // Detaches every tab: the shells run on in the session for the next visit.
    close() { for (const t of [...terms]) { t.view.dispose(); } terms.length = 0; },
  };
}
