// A terminal: xterm.js over GET /v1/sessions/{id}/exec/ws with a PTY. The WebSocket speaks the
// channel framing of docs/api.md: the first (text) message is the exec spec with `tty`; then
// binary messages whose first byte is the channel — 0 stdin, 1 stdout, 2 stderr, 3 status
// (JSON, last), 4 resize (JSON {rows, cols}). The browser sends the console's cookie with the
// upgrade; the server checks its Origin.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { h } from "./dom.js";
import { withOwner } from "./api.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// The shell: bash where the image has it (login, so the prompt and PATH are the usual), else sh.
const SHELL = "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l";

export class TerminalView {
  // onState(text) reports "connected", "exited with 0", "disconnected".
  constructor(sessionId, onState) {
    this.sessionId = sessionId;
    this.onState = onState;
    this.el = h("div", { class: "terminal-host" });
    this.term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: "#111827", foreground: "#e5e7eb", cursor: "#f59e0b" },
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.ws = null;
    this.opened = false;
    this.term.onData((d) => this.send(0, encoder.encode(d)));
    this.term.onBinary((d) => this.send(0, Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
    this.term.onResize(({ rows, cols }) => this.send(4, encoder.encode(JSON.stringify({ rows, cols }))));
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

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/v1/sessions/${encodeURIComponent(this.sessionId)}/exec/ws`;
    const ws = new WebSocket(withOwner(url));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.onState("connecting…");
    ws.onopen = () => {
      ws.send(JSON.stringify({
        command: SHELL,
        env: { TERM: "xterm-256color", LANG: "C.UTF-8" },
        tty: { rows: this.term.rows, cols: this.term.cols },
      }));
      this.onState("connected");
      this.focus();
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
        const how = status.error ? status.error.message
                  : status.signal ? `killed by signal ${status.signal}`
                  : `exited with ${status.exit_code}`;
        this.term.write(`\r\n\x1b[2m[the shell ${how}]\x1b[0m\r\n`);
        this.onState(status.error ? `error: ${status.error.message}` : how);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      // A refused upgrade (401, 404, 409) closes without a status; say so in the terminal.
      if (ev.code !== 1000) {
        this.term.write(`\r\n\x1b[2m[disconnected${ev.reason ? ": " + ev.reason : ""}]\x1b[0m\r\n`);
        this.onState("disconnected");
      }
    };
  }

  // A fresh shell in the same view (the old one ended when its socket closed).
  reconnect() {
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.term.reset();
    this.connect();
  }

  send(channel, payload) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const frame = new Uint8Array(payload.length + 1);
    frame[0] = channel;
    frame.set(payload, 1);
    ws.send(frame);
  }

  dispose() {
    this.resizeObserver.disconnect();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    this.term.dispose();
  }
}

// Several terminals side by side as tabs: "+" opens another shell, each tab closes its own.
export function terminalsPanel(sessionId) {
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

  function select(t) {
    active = t;
    for (const x of terms) {
      const on = x === t;
      x.tab.setAttribute("aria-selected", on ? "true" : "false");
      x.tab.tabIndex = on ? 0 : -1;
      x.view.el.hidden = !on;
    }
    if (!t) return;
    state.textContent = t.state || "";
    t.view.attach();
    requestAnimationFrame(() => { t.view.refit(); t.view.focus(); });
  }

  function add() {
    const n = ++counter;
    const entry = { state: "" };
    entry.view = new TerminalView(sessionId, (s) => {
      entry.state = s;
      if (active === entry) state.textContent = s;
    });
    const id = `term-${n}`;
    entry.view.el.id = `${id}-panel`;
    entry.view.el.setAttribute("role", "tabpanel");
    entry.view.el.setAttribute("aria-labelledby", id);
    const close = h("button", { type: "button", class: "tab-close", "aria-label": `Close terminal ${n}`,
                                title: "Close", onclick: () => remove(entry) }, "×");
    entry.tab = h("button", { type: "button", role: "tab", id, "aria-controls": `${id}-panel`, class: "term-tab",
                              onclick: () => select(entry) }, `Shell ${n}`);
    tablist.append(h("span", { class: "term-tab-wrap" }, entry.tab, close));
    stage.append(entry.view.el);
    terms.push(entry);
    select(entry);
  }

  function remove(entry) {
    const i = terms.indexOf(entry);
    if (i < 0) return;
    terms.splice(i, 1);
    entry.view.dispose();
    entry.view.el.remove();
    entry.tab.parentNode.remove();
    if (active === entry) select(terms[Math.max(0, i - 1)] || null);
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
    // Opens the first terminal when the panel is first shown.
    show() { if (!terms.length) add(); else select(active); },
    close() { for (const t of [...terms]) { t.view.dispose(); } terms.length = 0; },
  };
}
