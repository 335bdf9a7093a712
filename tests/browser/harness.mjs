// What the browser tests share: a real `hutch serve` on a temp data dir and port 0, the API
// with a token, headless Chromium through puppeteer-core, named steps and screenshots.
import { mkdtempSync, mkdirSync, existsSync, rmSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import { sleep, startHutch } from "../testing/hutch_serve.mjs";

export { sleep };
export const CHROMIUM = process.env.HUTCH_CHROMIUM || "/usr/bin/chromium";

// Exits 77 (skipped) without root or Chromium; empties `artifacts` of an earlier run's PNGs
// whose names match `pattern` (a failure's screenshot from an earlier run must not linger).
export function prepare(artifacts, pattern) {
  if (process.getuid() !== 0) { console.log("SKIP: needs root (namespaces, mounts, cgroups)"); process.exit(77); }
  if (!existsSync(CHROMIUM)) { console.log(`SKIP: no ${CHROMIUM}; run scripts/setup`); process.exit(77); }
  mkdirSync(artifacts, { recursive: true });
  for (const f of readdirSync(artifacts)) if (pattern.test(f)) rmSync(join(artifacts, f));
}

export async function startServer(hutch, env = {}, args = []) {
  return startHutch(hutch, "hutch-browser-", env, args);
}

export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), "hutch-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM, headless: true, userDataDir: profile, protocolTimeout: 30000,
    // Root cannot use Chromium's sandbox; the pages are our own console on loopback.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  return { browser, profile, async close() { await browser.close().catch(() => {}); rmSync(profile, { recursive: true, force: true }); } };
}

// Named steps that go on after a failure (each failure is counted, printed and screenshotted).
export function stepper(artifacts, prefix) {
  const results = [];
  let failures = 0;
  let shots = 0;
  const started = Date.now();
  let failShot = async () => {};
  const api = {
    async shot(page, name, fullPage = false) {
      await page.screenshot({ path: join(artifacts, `${prefix}${String(++shots).padStart(2, "0")}-${name}.png`), fullPage });
    },
    onFailureShoot(fn) { failShot = fn; },
    async step(name, fn) {
      const t0 = Date.now();
      try {
        await fn();
        results.push(`ok   ${name} (${Date.now() - t0} ms)`);
        console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failures++;
        results.push(`FAIL ${name}: ${e.stack || e}`);
        console.log(`FAIL ${name} (${Date.now() - t0} ms)\n${e.stack || e}`);
        try { await failShot(`FAILED-${name.replace(/[^a-z0-9]+/gi, "-")}`); } catch { /* no page */ }
      }
    },
    get failures() { return failures; },
    finish(file) {
      writeFileSync(join(artifacts, file), results.join("\n") + "\n");
      console.log(`${failures ? "FAILED" : "passed"}: ${results.length - failures}/${results.length} steps in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${artifacts}`);
      return failures ? 1 : 0;
    },
  };
  return api;
}

// The text of the visible terminal's rows on `page`.
export function terminalText(page) {
  return page.evaluate(() => {
    const panel = [...document.querySelectorAll(".terminal-host")].find((el) => !el.hidden);
    return panel ? [...panel.querySelectorAll(".xterm-rows > div")].map((r) => r.textContent.replace(/\u00a0/g, " ")).join("\n") : "";
  });
}

export async function waitForTerminal(page, pred, what, ms = 20000) {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    last = await terminalText(page);
    if (pred(last)) return last;
    await sleep(100);
  }
  throw new Error(`terminal never showed ${what}; it shows:\n${last}`);
}

export async function typeInTerminal(page, text) {
  await page.focus(".terminal-host:not([hidden]) .xterm-helper-textarea");
  await page.keyboard.type(text);
}

// Watches a page for what must never happen: CSP violations, page errors, alert() dialogs
// (confirm and prompt are answered with `answers.prompt`).
export function watch(page, answers = { prompt: "" }) {
  const seen = { csp: [], errors: [], alerts: [] };
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) seen.csp.push(m.text()); });
  page.on("dialog", async (d) => {
    if (d.type() === "prompt") await d.accept(answers.prompt);
    else if (d.type() === "confirm") await d.accept();
    else { seen.alerts.push(d.message()); await d.dismiss(); }
  });
  return seen;
}

// Signs `page` in to the console at `base` with `token`; waits for `ready` (a selector).
export async function signIn(page, base, token, ready) {
  await page.goto(base + "/", { waitUntil: "load" });
  await page.waitForSelector("#token");
  await page.type("#token", token);
  await page.click("form.signin button[type=submit]");
  await page.waitForSelector(ready);
}
