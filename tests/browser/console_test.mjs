// Browser tests of the web console (web/), as a user meets it: a real `hutch serve` on a temp
// data dir and port 0, driven through Debian's headless Chromium by puppeteer-core.
//
//   scripts/node tests/browser/console_test.mjs HUTCH_BINARY ARTIFACT_DIR
//
// Screenshots of every page go to ARTIFACT_DIR (NN-name.png). Needs root (the server makes
// sandboxes) and /usr/bin/chromium (scripts/setup installs it); without either it exits 77
// (skipped). harness.mjs has what the browser tests share.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import * as harness from "./harness.mjs";

const { sleep } = harness;
const [hutch, artifacts] = process.argv.slice(2);
if (!hutch || !artifacts) {
  console.error("usage: console_test.mjs HUTCH_BINARY ARTIFACT_DIR");
  process.exit(2);
}
harness.prepare(artifacts, /^\d+-.*\.png$/);

// ---- the server --------------------------------------------------------------------------
// Apps get hosts of their own ({port}-{session}.localhost): Chromium resolves *.localhost to the
// loopback without any DNS.
const srv = await harness.startServer(hutch, { HUTCH_PROXY_BASE_DOMAIN: "localhost" });
const { base, adminToken, api } = srv;

// A user of their own (not the admin) signs in: what a console user is.
await api("POST", "/v1/users", { name: "ada" });
const issued = await api("POST", "/v1/tokens?owner=ada", { name: "browser" });
assert.equal(issued.status, 201, issued.text);
const token = issued.json.token;

// ---- the browser -------------------------------------------------------------------------
const chromium = await harness.launchBrowser();
const { browser, profile } = chromium;
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 800 });
page.setDefaultTimeout(20000);
const requestedUrls = [];
page.on("request", (r) => requestedUrls.push(r.url()));
// confirm() and prompt() of the console are answered; any alert() would be an injected script.
const answers = { prompt: "" };
const seen = harness.watch(page, answers);
await page.evaluateOnNewDocument(() => {
  // The page's WebSockets, so a test can cut one as a network blip would.
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
  window.__csp = [];
  document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
});

const t = harness.stepper(artifacts, "");
const step = t.step;
const shot = (name, p = page) => t.shot(p, name);
t.onFailureShoot((name) => t.shot(page, name));
const waitForTerminal = (pred, what, ms = 15000) => harness.waitForTerminal(page, pred, what, ms);
const typeInTerminal = (text) => harness.typeInTerminal(page, text);

let sessionId = null;
const rand = Math.floor(Math.random() * 1e9);

try {
  await step("the console is served at / with a strict CSP and no third-party requests", async () => {
    const res = await page.goto(base + "/", { waitUntil: "networkidle0" });
    assert.equal(res.status(), 200);
    const csp = res.headers()["content-security-policy"] || "";
    assert.match(csp, /script-src 'self'(;|$)/, csp);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers()["x-content-type-options"], "nosniff");
    for (const asset of ["/assets/app.js", "/assets/style.css"]) {
      const r = await fetch(base + asset);
      assert.equal(r.status, 200, asset);
      assert.match(r.headers.get("content-security-policy") || "", /script-src 'self'/);
    }
    await page.waitForSelector("#token");
    // What the first load costs (printed, not asserted: timings are no test's business).
    const load = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const res = performance.getEntriesByType("resource");
      return { ms: Math.round(nav.loadEventEnd), bytes: nav.encodedBodySize + res.reduce((n, r) => n + r.encodedBodySize, 0),
               files: 1 + res.length };
    });
    console.log(`     first load: ${load.files} files, ${load.bytes} bytes, load event at ${load.ms} ms`);
    await shot("signin");
  });

  await step("a wrong token is refused with the API's own words", async () => {
    await page.type("#token", "hutch_not_a_real_token");
    await page.click("form.signin button[type=submit]");
    await page.waitForSelector(".signin .notice.error");
    const msg = await page.$eval(".signin .notice.error", (el) => el.textContent);
    assert.equal(msg, "the token is not valid");
  });

  await step("sign in: the token ends up in no URL, no storage and no script-visible cookie", async () => {
    await page.$eval("#token", (el) => { el.value = ""; });
    await page.type("#token", token);
    await page.click("form.signin button[type=submit]");
    await page.waitForSelector("table.sessions");
    assert.equal(await page.$eval(".whoami", (el) => el.textContent), "ada");
    const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    assert.ok(!storage.includes(token), "the token is in web storage or document.cookie");
    assert.ok(!page.url().includes(token));
    const cookies = await browser.cookies();
    const c = cookies.find((x) => x.name === "hutch_console");
    assert.ok(c, "no hutch_console cookie");
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, "Strict");
    assert.equal(c.path, "/");
    assert.notEqual(c.value, token, "the cookie must hold a token of its own, not the one typed");
    // After a reload the console is still signed in, by the cookie alone.
    // (Not networkidle: the list keeps its events stream open.)
    await page.reload({ waitUntil: "load" });
    await page.waitForSelector("table.sessions");
    await shot("sessions-empty");
  });

  await step("the cookie: CSRF header and same origin required for changes; bearer tokens unaffected", async () => {
    const c = (await browser.cookies()).find((x) => x.name === "hutch_console");
    const cookie = `hutch_console=${c.value}`;
    const host = new URL(base).host;
    let r = await fetch(base + "/v1/sessions", { headers: { Cookie: cookie } });
    assert.equal(r.status, 200, "a GET with the cookie");
    r = await fetch(base + "/v1/sessions", { method: "POST", headers: { Cookie: cookie, "Content-Type": "application/json" }, body: "{}" });
    assert.equal(r.status, 403, "a POST without X-Hutch-CSRF");
    const body = await r.json();
    assert.match(body.error.message, /X-Hutch-CSRF/);
    r = await fetch(base + "/v1/sessions", { method: "POST", headers: { Cookie: cookie, "X-Hutch-CSRF": "forged", "Content-Type": "application/json" }, body: "{}" });
    assert.equal(r.status, 403, "a POST with a wrong X-Hutch-CSRF");
    r = await fetch(base + "/v1/sessions", { headers: { Cookie: cookie, Origin: "http://evil.example" } });
    assert.equal(r.status, 403, "a cookie request from another origin");
    r = await fetch(base + "/v1/sessions", { headers: { Cookie: cookie, Origin: `http://${host}` } });
    assert.equal(r.status, 200, "a cookie request from the console's origin");
    r = await fetch(base + "/v1/console/signin", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }) });
    assert.equal(r.status, 403, "sign-in without the CSRF header (login CSRF)");
    const session = await (await fetch(base + "/v1/console/session", { headers: { Cookie: cookie } })).json();
    assert.equal(session.user.name, "ada");
    assert.match(session.csrf, /^[0-9a-f]{64}$/);
  });

  await step("XSS in the create form: a script-like name is refused and shown as text", async () => {
    await page.click('a[href="#/new"]');
    await page.waitForSelector("#create-name");
    await shot("create");
    const payload = `<img src=x onerror="window.__xss=1;alert(1)">`;
    await page.$eval("#create-name", (el) => el.removeAttribute("pattern"));
    await page.type("#create-name", payload);
    await page.click("form.create button[type=submit]");
    await page.waitForSelector("form.create .notice.error");
    const msg = await page.$eval("form.create .notice.error", (el) => el.textContent);
    assert.ok(msg.includes(payload), `the API's message names the input: ${msg}`);
    assert.equal(await page.evaluate(() => document.querySelectorAll("img[onerror]").length), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  });

  await step("create a session from the form, with an XSS label; land on its terminal", async () => {
    await page.$eval("#create-name", (el) => { el.value = ""; });
    await page.type("#create-name", "web-1");
    await page.type("#create-labels", `course=web\nnote=<script>window.__xss=2</script><img src=x onerror="window.__xss=3">`);
    await page.click("form.create button[type=submit]");
    await page.waitForSelector(".session-head h1");
    sessionId = decodeURIComponent(page.url().split("#/s/")[1].split("/")[0]);
    assert.match(sessionId, /^ses_/);
    await page.waitForFunction(() => document.querySelector(".session-head .badge")?.textContent === "running");
    const chips = await page.$$eval(".summary .chip", (els) => els.map((e) => e.textContent));
    assert.ok(chips.includes(`note=<script>window.__xss=2</script><img src=x onerror="window.__xss=3">`), chips.join(" | "));
    assert.equal(await page.evaluate(() => document.querySelectorAll("img[onerror], .summary script").length), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  });

  let colsWide = 0;
  await step("the terminal: type echo hello-$RANDOM and see its output", async () => {
    await waitForTerminal((t) => /[#$] *$/m.test(t), "a prompt");
    await typeInTerminal(`echo hello-${rand}\n`);
    const text = await waitForTerminal((t) => t.split("\n").some((l) => l.trim() === `hello-${rand}`), `hello-${rand}`);
    assert.ok(text.includes(`echo hello-${rand}`));
    await typeInTerminal("stty size\n");
    const sized = await waitForTerminal((t) => /^\d+ \d+\s*$/m.test(t), "stty size");
    colsWide = Number(sized.match(/^(\d+) (\d+)\s*$/m)[2]);
    assert.ok(colsWide > 80, `a 1280 px wide terminal has more than 80 columns, not ${colsWide}`);
    await shot("terminal");
  });

  await step("terminal tabs: a second shell of its own; a narrow window resizes the PTY", async () => {
    await page.click(".terminals button[aria-label='New terminal']");
    // The new tab is the one shown and connected before anything is read or typed: until then
    // the first shell may still be the terminal on screen (the one read and typed into).
    await page.waitForFunction(() => {
      const tabs = document.querySelectorAll(".term-tab");
      return tabs.length === 2 && tabs[1].getAttribute("aria-selected") === "true" &&
        document.querySelectorAll(".terminal-host:not([hidden])").length === 1 &&
        document.querySelector(".term-state")?.textContent === "connected";
    }, { timeout: 20000 });
    await waitForTerminal((t) => /[#$] *$/m.test(t), "a prompt in the second shell");
    await typeInTerminal("echo second-$((6*7))\n");
    await waitForTerminal((t) => t.split("\n").some((l) => l.trim() === "second-42"), "second-42");
    await page.setViewport({ width: 600, height: 800 });
    await sleep(300);
    await typeInTerminal("clear; stty size\n");
    const sized = await waitForTerminal((t) => /^\d+ \d+\s*$/m.test(t), "stty size after the resize");
    const cols = Number(sized.match(/^(\d+) (\d+)\s*$/m)[2]);
    assert.ok(cols < colsWide, `the PTY follows the window: ${cols} columns narrow, ${colsWide} wide`);
    await shot("terminal-narrow");
    await page.setViewport({ width: 1280, height: 800 });
    // The first tab still holds its own shell's output.
    await page.click("#term-1");
    await waitForTerminal((t) => t.includes(`hello-${rand}`), "the first shell's output");
  });

  await step("a network blip: the terminal's WebSocket drops, the console reconnects to the same shell", async () => {
    await typeInTerminal("BLIP=blip-$((40+2)); echo set-$BLIP\n");
    await waitForTerminal((t) => t.includes("set-blip-42"), "set-blip-42");
    // Offline, and the open terminal sockets cut: what a dropped Wi-Fi does to the page.
    const cdp = await page.createCDPSession();
    const net = (offline) => cdp.send("Network.emulateNetworkConditions",
                                      { offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await cdp.send("Network.enable");
    await net(true);
    await page.evaluate(() => window.__sockets.filter((s) => s.url.includes("/terminals/") && s.readyState === 1).forEach((s) => s.close()));
    await page.waitForFunction(() => document.querySelector(".term-state")?.textContent === "reconnecting…", { timeout: 5000 });
    await shot("terminal-reconnecting");
    await sleep(600);
    await net(false);
    await page.waitForFunction(() => document.querySelector(".term-state")?.textContent === "connected", { timeout: 15000 });
    await cdp.detach();
    await typeInTerminal("echo still-$BLIP\n");
    await waitForTerminal((t) => t.split("\n").some((l) => l.trim() === "still-blip-42"), "still-blip-42 (the same shell)");
    // A reload lists the session's live terminals and reattaches: both tabs, the scrollback back.
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll(".term-tab").length === 2);
    await waitForTerminal((t) => t.includes("still-blip-42"), "the replayed scrollback after a reload");
    await typeInTerminal("echo reloaded-$BLIP\n");
    await waitForTerminal((t) => t.split("\n").some((l) => l.trim() === "reloaded-blip-42"), "reloaded-blip-42");
  });

  const uploaded = `upload line ${rand}\n<b>not html</b>\n`;
  const xssFile = `<img src=x onerror=window.__xss=4>.txt`;
  await step("files: upload with the file browser, read it back with exec", async () => {
    await page.click("#tab-files");
    await page.waitForSelector("#files-path");
    await page.waitForFunction(() => document.querySelector(".files-table tbody tr"));
    const local = join(profile, "notes.txt");
    writeFileSync(local, uploaded);
    const input = await page.$("#files-upload");
    await input.uploadFile(local);
    await page.waitForSelector(".uploads li.done");
    const progress = await page.$eval(".uploads li.done progress", (el) => el.value);
    assert.equal(progress, 100);
    await page.waitForFunction(() => [...document.querySelectorAll(".files-table td")].some((td) => td.textContent === "notes.txt"));
    const r = await api("POST", `/v1/sessions/${sessionId}/exec?owner=ada`, { cmd: ["cat", "/root/notes.txt"] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.stdout, uploaded);
    await shot("files");
  });

  await step("files: a script-like file name is text; rename and delete", async () => {
    const put = await fetch(`${base}/v1/sessions/${sessionId}/files?path=${encodeURIComponent("/root/" + xssFile)}`,
                            { method: "PUT", headers: { Authorization: `Bearer ${token}` }, body: "x" });
    assert.equal(put.status, 201);
    await page.click(".files-bar button:nth-of-type(3)");  // Refresh
    await page.waitForFunction((n) => [...document.querySelectorAll(".files-table td span")].some((s) => s.textContent === n), {}, xssFile);
    assert.equal(await page.evaluate(() => document.querySelectorAll("img[onerror]").length), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    answers.prompt = "renamed.txt";
    await page.click("button[aria-label='Rename notes.txt']");
    await page.waitForSelector("button[aria-label='Delete renamed.txt']");
    let r = await api("POST", `/v1/sessions/${sessionId}/exec?owner=ada`, { cmd: ["cat", "/root/renamed.txt"] });
    assert.equal(r.json.stdout, uploaded);
    await page.click("button[aria-label='Delete renamed.txt']");
    await page.waitForFunction(() => !document.querySelector("button[aria-label='Delete renamed.txt']"));
    r = await api("POST", `/v1/sessions/${sessionId}/exec?owner=ada`, { cmd: ["test", "-e", "/root/renamed.txt"] });
    assert.equal(r.json.exit_code, 1);
  });

  await step("processes: start a web server, follow its output; open the port through the proxy", async () => {
    await page.click("#tab-processes");
    await page.waitForSelector("#proc-command");
    // An app that answers with the Cookie header it was sent: the console's cookie must not be
    // among them (the proxy keeps hutch's own cookies from apps).
    const app = "import http.server as h;H=type('H',(h.BaseHTTPRequestHandler,),{'do_GET':lambda s:(s.send_response(200)," +
      "s.send_header('Content-Type','text/plain'),s.end_headers(),s.wfile.write(('served-%s cookie=[%s]'%(" +
      `${rand},s.headers.get('Cookie',''))).encode()))});h.HTTPServer(('127.0.0.1',8000),H).serve_forever()`;
    await page.type("#proc-command", `exec python3 -c "${app}"`);
    await page.type("#proc-tag", "web");
    await page.click("#panel-processes form button[type=submit]");
    await page.waitForFunction(() => [...document.querySelectorAll("#panel-processes td")].some((td) => td.textContent === "web"));
    await shot("processes");
    await page.click("#tab-services");
    // The server needs a moment to listen.
    const deadline = Date.now() + 15000;
    while (!(await page.$("button[aria-label='Open port 8000 in a new tab']"))) {
      if (Date.now() > deadline) throw new Error("port 8000 never showed up");
      await sleep(300);
      await page.click("#panel-services button.ghost");  // Refresh
    }
    await shot("services-ports");
    // The server has proxy_base_domain: the app opens on a host of its own, not the console's.
    const appHost = `8000-${sessionId}.localhost`;
    const opened = browser.waitForTarget((t) => t.url().includes(appHost));
    await page.click("button[aria-label='Open port 8000 in a new tab']");
    const target = await opened;
    const appPage = await target.page();
    await appPage.waitForFunction((want) => document.body && document.body.innerText.includes(want), {}, `served-${rand}`);
    const seen = await appPage.evaluate(() => document.body.innerText);
    console.log(`     the app saw: ${seen}`);
    assert.ok(!seen.includes("hutch_console") && !seen.includes("hutch_port_access"), `the app was sent: ${seen}`);
    assert.notEqual(await appPage.evaluate(() => location.origin), new URL(base).origin);
    // A reload needs no signature: the host's own access cookie opens it.
    await appPage.goto(appPage.url().split("?")[0]);
    await appPage.waitForFunction((want) => document.body && document.body.innerText.includes(want), {}, `served-${rand}`);
    // The signed URL's parameters are the port's, never the console's token.
    assert.ok(!target.url().includes(token));
    await appPage.close();
  });

  await step("apps never run on the console's origin: session B's page cannot read the console or session A's app", async () => {
    // Session B (the user's second), serving a hostile page on port 8001.
    const b = await api("POST", "/v1/sessions", { name: "web-2" }, token);
    assert.equal(b.status, 201, b.text);
    assert.equal((await api("POST", `/v1/sessions/${b.json.id}/files/mkdir`, { path: "/root/site" }, token)).status, 201);
    const put = await fetch(`${base}/v1/sessions/${b.json.id}/files?path=/root/site/attack.html`, {
      method: "PUT", headers: { Authorization: `Bearer ${token}` },
      body: readFileSync(new URL("./pages/attack.html", import.meta.url)) });
    assert.equal(put.status, 201);
    const p = await api("POST", `/v1/sessions/${b.json.id}/processes`,
                        { cmd: ["python3", "-m", "http.server", "8001", "--bind", "127.0.0.1", "--directory", "/root/site"], tag: "site" }, token);
    assert.equal(p.status, 201, p.text);
    // The browser holds access to A's app under path routing (its cookie, scoped to A's port) …
    const aUrl = (await api("POST", `/v1/sessions/${sessionId}/ports/8000/url`, {}, token)).json.url;
    const aPath = aUrl.split("?")[0];
    const tab = await browser.newPage();
    try {
    const aRes = await tab.goto(base + aUrl);
    assert.match(await tab.evaluate(() => document.body.innerText), new RegExp(`served-${rand}`));
    assert.match(aRes.headers()["content-security-policy"] || "", /^sandbox /);
    assert.ok((await browser.cookies()).some((c) => c.name === "hutch_port_access" && c.path === aPath));
    // … and the console's own page can read both: what the hostile page must not be able to do.
    const control = await page.evaluate(async (a) => [(await fetch("/v1/sessions")).status, await (await fetch(a)).text()], aPath);
    assert.equal(control[0], 200);
    assert.match(control[1], new RegExp(`served-${rand}`));
    // Then it opens B's page (path routing: the console's own origin, sandboxed).
    const bUrl = (await api("POST", `/v1/sessions/${b.json.id}/ports/8001/url`, {}, token)).json.url;
    const bSigned = base + bUrl.replace("/ports/8001/?", "/ports/8001/attack.html?") + "#other=" + encodeURIComponent(aPath);
    for (let i = 0; i < 100; i++) {  // the page's server may still be starting (503)
      const r = await api("GET", `/v1/sessions/${b.json.id}/ports/8001/attack.html`, undefined, token);
      if (r.status === 200) break;
      await sleep(100);
    }
    const bRes = await tab.goto(bSigned);
    assert.equal(bRes.status(), 200);
    assert.match(bRes.headers()["content-security-policy"] || "", /^sandbox allow-scripts/);
    await tab.bringToFront();
    await tab.waitForFunction(() => window.__results, { timeout: 40000, polling: 100 });
    const results = await tab.evaluate(() => window.__results);
    console.log("     " + JSON.stringify(results));
    assert.equal(results.origin, "null", "the sandboxed page has an opaque origin");
    const checks = Object.entries(results).filter(([k]) => k !== "origin");
    assert.equal(checks.length, 10);
    for (const [what, outcome] of checks) assert.match(outcome, /^blocked: /, `${what}: ${outcome}`);
    await tab.bringToFront();
    await shot("app-sandboxed", tab);
    } finally {
      // A page in the background gets no animation frames: the console's tab comes back first.
      await tab.close();
      await page.bringToFront();
    }
    // The no-cors POST it fired carried no cookie and no CSRF header: nothing was made.
    const list = await api("GET", "/v1/sessions", undefined, token);
    assert.ok(!list.json.sessions.some((x) => x.name === "pwned"));
    await api("DELETE", `/v1/sessions/${b.json.id}?purge=true`, undefined, token);
  });

  await step("usage charts: cpu and memory from stats, drawn while the page was open", async () => {
    // Samples every 3 s since the session page opened (the steps above took longer than that).
    const points = (sel) => page.$eval(sel, (el) => (el.getAttribute("points") || "").split(" ").filter(Boolean).length);
    await page.waitForFunction(() => document.querySelectorAll(".chart polyline").length === 2
      && [...document.querySelectorAll(".chart polyline")].every((l) => (l.getAttribute("points") || "").split(" ").filter(Boolean).length >= 2),
      { timeout: 15000 });
    assert.ok(await points(".chart:nth-child(1) polyline") >= 2);
    const labels = await page.$$eval(".chart svg", (els) => els.map((e) => e.getAttribute("aria-label")));
    assert.match(labels[0], /^CPU: \d+ % now$/);
    assert.match(labels[1], /^Memory: [\d.]+ (B|KiB|MiB|GiB) now$/);
  });

  await step("checkpoints tab and history tab render (live events)", async () => {
    await page.click("#tab-checkpoints");
    await page.waitForSelector("#ckpt-name");
    await shot("checkpoints");
    await page.click("#tab-history");
    await page.waitForFunction(() => [...document.querySelectorAll("#panel-history td")].some((td) => td.textContent === "session.ready"));
    await shot("history");
  });

  await step("sessions list: live state over SSE, filters, XSS label shown as text", async () => {
    await page.click('a[href="#/"]');
    await page.waitForFunction(() => document.querySelectorAll("table.sessions tbody tr").length === 1);
    await shot("sessions");
    // Paused elsewhere (the API): the list follows without a reload.
    const r = await api("POST", `/v1/sessions/${sessionId}/pause`, undefined, token);
    assert.equal(r.status, 200, r.text);
    await page.waitForFunction(() => document.querySelector("table.sessions tbody tr .badge")?.textContent === "paused");
    await api("POST", `/v1/sessions/${sessionId}/resume`, undefined, token);
    await page.waitForFunction(() => document.querySelector("table.sessions tbody tr .badge")?.textContent === "running");
    await page.type("#filter-q", "nomatch");
    await page.waitForFunction(() => document.querySelectorAll("table.sessions tbody tr").length === 0);
    await page.$eval("#filter-q", (el) => { el.value = ""; el.dispatchEvent(new Event("input")); });
    await page.waitForFunction(() => document.querySelectorAll("table.sessions tbody tr").length === 1);
    await page.type("#filter-label", "course=nope");
    await page.waitForFunction(() => document.querySelectorAll("table.sessions tbody tr").length === 0);
    await page.$eval("#filter-label", (el) => { el.value = ""; });
    await page.type("#filter-label", "course=web");
    await page.waitForFunction(() => document.querySelectorAll("table.sessions tbody tr").length === 1);
    assert.equal(await page.evaluate(() => document.querySelectorAll("img[onerror]").length), 0);
    await page.setViewport({ width: 480, height: 800 });
    await shot("sessions-narrow");
    await page.setViewport({ width: 1280, height: 800 });
  });

  await step("no script ran that should not, no CSP violation, no page error, the token in no URL", async () => {
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.deepEqual(seen.alerts, []);
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
    assert.deepEqual(seen.csp, []);
    assert.deepEqual(seen.errors, []);
    assert.ok(requestedUrls.length > 10);
    for (const u of requestedUrls) {
      assert.ok(!u.includes(token), `a request URL carries the token: ${u}`);
      assert.ok(u.startsWith(base) || u.startsWith("data:") || u.startsWith("ws://"), `a request left the server: ${u}`);
    }
  });

  await step("sign out: the cookie is cleared and its token revoked", async () => {
    const c = (await browser.cookies()).find((x) => x.name === "hutch_console");
    await page.click(".topbar button.ghost");
    await page.waitForSelector("#token");
    assert.ok(!(await browser.cookies()).some((x) => x.name === "hutch_console"));
    const r = await fetch(base + "/v1/sessions", { headers: { Cookie: `hutch_console=${c.value}` } });
    assert.equal(r.status, 401);
    // The token the user typed still works: only the console's own was revoked.
    assert.equal((await api("GET", "/v1/me", undefined, token)).status, 200);
  });
} finally {
  await chromium.close();
  // Sandboxes outlive their server by design: remove the test's before stopping it.
  const list = await api("GET", "/v1/sessions?owner=ada&include_deleted=true");
  for (const x of list.json?.sessions || []) await api("DELETE", `/v1/sessions/${x.id}?purge=true`);
  if (t.failures) console.log("serve log (tail):\n" + srv.log().slice(-4000));
  await srv.stop(t.failures > 0);
}
process.exit(t.finish("results.txt"));
