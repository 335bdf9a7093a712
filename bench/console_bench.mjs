// The web console in a real browser (issue 20): keystroke echo as a user sees it — a key pressed
// in Chromium, through xterm.js, the exec WebSocket, the server, the agent and the PTY, back, and
// drawn by xterm.js — beside the raw WebSocket from the same page (no xterm.js: one byte sent,
// its echo frame received); the reattach of a terminal after its WebSocket was cut; then the
// console's first load (time and bytes over the wire).
//
//   scripts/node bench/console_bench.mjs HUTCH_BINARY [KEYSTROKES] [LOADS] [REATTACHES]
//                                                                   (root, chromium)
//
// Both echo paths run `cat` on a PTY (the line discipline echoes), in blocks of 50 keystrokes
// taking turns, so a neighbour's noise falls on both alike. Every 50 keystrokes a carriage
// return ends the line (untimed). Times are taken inside the page (performance.now()): from the
// keydown event reaching the document to the first change of the terminal rows' text (a
// MutationObserver; xterm.js draws on the next animation frame), and from WebSocket.send to the
// echo frame's message event.
import { startServer, launchBrowser, signIn, sleep, waitForTerminal, typeInTerminal } from "../tests/browser/harness.mjs";

const [hutch, keysArg = "300", loadsArg = "10", reattachArg = "30"] = process.argv.slice(2);
if (!hutch) {
  console.error("usage: console_bench.mjs HUTCH_BINARY [KEYSTROKES] [LOADS] [REATTACHES]");
  process.exit(2);
}
const KEYS = Number(keysArg), LOADS = Number(loadsArg), REATTACHES = Number(reattachArg), BLOCK = 50;

function summary(name, ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `${name.padEnd(46)} n=${String(s.length).padEnd(5)} p50 ${q(0.5).toFixed(2).padStart(7)} ms   p90 ${q(0.9).toFixed(2).padStart(7)} ms   p99 ${q(0.99).toFixed(2).padStart(7)} ms`;
}

const srv = await startServer(hutch);
const { browser, close } = await launchBrowser();
let session = null;
try {
  const made = await srv.api("POST", "/v1/sessions", { name: "bench" });
  if (made.status !== 201) throw new Error(made.text);
  session = made.json.id;
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  await signIn(page, srv.base, srv.adminToken, "#filter-q");
  await page.goto(`${srv.base}/#/s/${session}/terminal`);
  await waitForTerminal(page, (t) => /[#$] *$/m.test(t), "a prompt");
  await typeInTerminal(page, "stty -icanon; cat\n");
  await sleep(500);

  // The xterm.js path: keydown → rows' text changed.
  await page.evaluate(() => {
    const rows = document.querySelector(".terminal-host:not([hidden]) .xterm-rows");
    const text = () => rows.textContent;
    window.__lat = [];
    let pending = null;
    document.addEventListener("keydown", (e) => { if (e.key.length === 1) pending = { t0: performance.now(), before: text() }; }, true);
    // Where the time goes: the terminal's WebSocket.send of the key (t1) and the next frame
    // that arrives on that socket (t2), by wrapping send (looked up on the prototype per call).
    const send = WebSocket.prototype.send;
    const hooked = new WeakSet();
    WebSocket.prototype.send = function (data) {
      if (data instanceof Uint8Array && data[0] === 0 && this.url.includes("/terminals/")) window.__termWs = this;
      if (pending && pending.t1 === undefined && data instanceof Uint8Array && data[0] === 0) {
        pending.t1 = performance.now();
        if (!hooked.has(this)) {
          hooked.add(this);
          this.addEventListener("message", () => {
            if (pending && pending.t1 !== undefined && pending.t2 === undefined) pending.t2 = performance.now();
          });
        }
      }
      return send.call(this, data);
    };
    new MutationObserver(() => {
      if (pending && text() !== pending.before) {
        const t3 = performance.now();
        window.__lat.push({ total: t3 - pending.t0, input: pending.t1 - pending.t0, wire: pending.t2 - pending.t1, draw: t3 - pending.t2 });
        pending = null;
      }
    }).observe(rows, { childList: true, subtree: true, characterData: true });
  });
  async function xtermBlock(n) {
    await page.focus(".terminal-host:not([hidden]) .xterm-helper-textarea");
    for (let i = 0; i < n; i++) {
      const before = await page.evaluate(() => window.__lat.length);
      await page.keyboard.press(String.fromCharCode(97 + (i % 26)));
      await page.waitForFunction((b) => window.__lat.length > b, { polling: "mutation" }, before);
    }
    await page.keyboard.press("Enter");  // untimed: the line ends, cat writes it back
    await sleep(50);
  }

  // The raw path from the same page: a WebSocket of its own running cat on a PTY.
  await page.evaluate(async (id) => {
    const ws = new WebSocket(`ws://${location.host}/v1/sessions/${id}/exec/ws`);
    ws.binaryType = "arraybuffer";
    await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
    ws.send(JSON.stringify({ cmd: ["sh", "-c", "stty -icanon; exec cat"], tty: { rows: 24, cols: 200 } }));
    let waiter = null;
    ws.onmessage = (m) => { if (waiter && new Uint8Array(m.data)[0] === 1) { const w = waiter; waiter = null; w(); } };
    await new Promise((r) => setTimeout(r, 300));
    window.__rawSend = (c) => { const got = new Promise((r) => { waiter = r; }); ws.send(new Uint8Array([0, c])); return got; };
    window.__raw = async (n) => {
      const out = [];
      for (let i = 0; i < n; i++) {
        const got = new Promise((r) => { waiter = r; });
        const t0 = performance.now();
        ws.send(new Uint8Array([0, 97 + (i % 26)]));
        await got;
        out.push(performance.now() - t0);
      }
      waiter = null;
      ws.send(new Uint8Array([0, 13]));
      await new Promise((r) => setTimeout(r, 50));
      return out;
    };
  }, session);

  // The raw path again, but sent from a keydown listener of a plain <input> that the keys are
  // pressed into: what a key event itself costs the page's scheduling, without xterm.js.
  await page.evaluate(() => {
    const input = document.createElement("input");
    input.id = "bench-keys";
    input.setAttribute("aria-label", "bench");
    document.body.prepend(input);
    window.__keyed = [];
    input.addEventListener("keydown", (e) => {
      if (e.key.length !== 1) return;
      const t0 = performance.now();
      window.__rawSend(e.key.charCodeAt(0)).then(() => window.__keyed.push(performance.now() - t0));
    });
  });
  async function keyedBlock(n) {
    await page.focus("#bench-keys");
    for (let i = 0; i < n; i++) {
      const before = await page.evaluate(() => window.__keyed.length);
      await page.keyboard.press(String.fromCharCode(97 + (i % 26)));
      while (await page.evaluate((b) => window.__keyed.length <= b, before)) await sleep(1);
    }
    await page.evaluate(() => window.__rawSend(13));
    await sleep(50);
  }

  // Warm-up, then blocks taking turns.
  await xtermBlock(10);
  await page.evaluate(() => window.__raw(10));
  await page.evaluate(() => { window.__lat = []; });
  await keyedBlock(10);
  await page.evaluate(() => { window.__keyed = []; });
  let raw = [];
  for (let done = 0; done < KEYS; done += BLOCK) {
    const n = Math.min(BLOCK, KEYS - done);
    await xtermBlock(n);
    raw = raw.concat(await page.evaluate((k) => window.__raw(k), n));
    await keyedBlock(n);
  }
  const xterm = await page.evaluate(() => window.__lat);

  // Reattach after a cut (issue 20 item 2): the console's terminal socket closed from the page,
  // timed to the first message of the socket the console opens again (the scrollback replay;
  // live from then on, checked by a keystroke echo after each). Beside it the raw figure from
  // the same page: a new WebSocket to …/terminals/{tid}/ws, open → replay received.
  await page.evaluate(() => {
    const Native = window.WebSocket;
    window.__NativeWebSocket = Native;  // the raw path's, not counted as the console's
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        if (String(args[0]).includes("/terminals/")) window.__lastTerm = this;
        this.addEventListener("message", () => { if (this.__first === undefined) this.__first = performance.now(); });
      }
    };
  });
  const tid = await page.$eval(".term-tab[aria-selected=true]", (el) => el.dataset.terminal);
  const reattach = [], rawReattach = [];
  for (let i = 0; i < REATTACHES; i++) {
    // The console's socket: the current one is the last made, or the first one, hooked by send.
    await typeInTerminal(page, "x");
    await sleep(20);
    reattach.push(await page.evaluate(async () => {
      const old = window.__lastTerm || window.__termWs;
      const t0 = performance.now();
      old.close();
      for (;;) {
        const now = window.__lastTerm;
        if (now && now !== old && now.__first !== undefined) return now.__first - t0;
        await new Promise((r) => setTimeout(r, 1));
      }
    }));
    rawReattach.push(await page.evaluate(async (args) => {
      const t0 = performance.now();
      const ws = new window.__NativeWebSocket(`ws://${location.host}/v1/sessions/${args.session}/terminals/${args.tid}/ws`);
      ws.binaryType = "arraybuffer";
      await new Promise((r) => { ws.onmessage = r; });
      const t = performance.now() - t0;
      ws.close();
      return t;
    }, { session, tid }));
  }
  await typeInTerminal(page, "\n");

  // First loads: each in a fresh browser context (empty cache, no cookie): the sign-in page.
  const loads = [];
  for (let i = 0; i < LOADS; i++) {
    const ctx = await browser.createBrowserContext();
    const p = await ctx.newPage();
    await p.goto(srv.base + "/", { waitUntil: "load" });
    await p.waitForSelector("#token");
    loads.push(await p.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const res = performance.getEntriesByType("resource");
      const all = [nav, ...res];
      return { load: nav.loadEventEnd, dcl: nav.domContentLoadedEventEnd, files: all.length,
               wire: all.reduce((n, r) => n + r.transferSize, 0), body: all.reduce((n, r) => n + r.encodedBodySize, 0),
               decoded: all.reduce((n, r) => n + r.decodedBodySize, 0) };
    }));
    await ctx.close();
  }

  const loadMs = loads.map((l) => l.load).sort((a, b) => a - b);
  const l0 = loads[0];
  console.log(`Keystroke echo in Chromium (${(await browser.version())}), cat on a PTY, ${KEYS} keystrokes each`);
  console.log("  " + summary("raw WebSocket from the page (send → echo frame)", raw));
  console.log("  " + summary("raw WebSocket, sent from a keydown listener", await page.evaluate(() => window.__keyed)));
  console.log("  " + summary("xterm.js terminal (keydown → row text drawn)", xterm.map((x) => x.total)));
  console.log("  " + summary("  of which keydown → WebSocket.send", xterm.map((x) => x.input)));
  console.log("  " + summary("  of which send → echo frame", xterm.map((x) => x.wire)));
  console.log("  " + summary("  of which echo frame → row text drawn", xterm.map((x) => x.draw)));
  console.log(`Reattach after a cut, ${REATTACHES} cuts (the terminal's scrollback holds the keystrokes above)`);
  console.log("  " + summary("console: socket closed → replay on the new one", reattach));
  console.log("  " + summary("raw: new WebSocket → scrollback replay received", rawReattach));
  console.log(`First load of the console (sign-in page), ${LOADS} cold loads, each in a fresh context`);
  console.log(`  load event p50 ${loadMs[Math.floor(loadMs.length / 2)].toFixed(0)} ms (min ${loadMs[0].toFixed(0)}, max ${loadMs[loadMs.length - 1].toFixed(0)}); DOMContentLoaded ${l0.dcl.toFixed(0)} ms in the first`);
  console.log(`  ${l0.files} files, ${l0.wire} bytes over the wire (headers included), ${l0.body} bytes of bodies (gzip), ${l0.decoded} bytes decoded`);
} finally {
  await close();
  if (session) await srv.api("DELETE", `/v1/sessions/${session}?purge=true`);
  await srv.stop();
}
