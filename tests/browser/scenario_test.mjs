// Browser test of a workshop that runs a scenario (docs/workshops.md, "Scenarios and courses";
// issue 19 items 1–2 in the console of issue 20): a participant joins by code, reads the step's
// rendered markdown, runs its check and sees it fail with the check's output, passes it after a
// fix, and moves on; the instructor's dashboard shows their progress. The step's markdown
// carries script payloads that must not run.
//
//   scripts/node tests/browser/scenario_test.mjs HUTCH_BINARY ARTIFACT_DIR
//
// Screenshots go to ARTIFACT_DIR as scenario-*.png. Needs root and /usr/bin/chromium; exits 77
// (skipped) without either.
import assert from "node:assert/strict";
import { prepare, startServer, launchBrowser, stepper, watch, signIn, sleep } from "./harness.mjs";

const [hutch, artifacts] = process.argv.slice(2);
if (!hutch || !artifacts) {
  console.error("usage: scenario_test.mjs HUTCH_BINARY ARTIFACT_DIR");
  process.exit(2);
}
prepare(artifacts, /^scenario-.*\.png$/);
const srv = await startServer(hutch);
const { base, api } = srv;
const { browser, close: closeBrowser } = await launchBrowser();
const t = stepper(artifacts, "scenario-");

assert.equal((await api("POST", "/v1/users", { name: "ivy", role: "instructor" })).status, 201);
const ivyToken = (await api("POST", "/v1/tokens?owner=ivy", { name: "browser" })).json.token;
const lab = await api("POST", "/v1/templates", { kind: "SessionTemplate", metadata: { name: "lab" },
                                                 spec: { resources: { cpus: 0.5, memory_mb: 256 } } }, ivyToken);
assert.equal(lab.status, 201, lab.text);
// Markdown an instructor wrote, with every way of smuggling script into it we know of: raw
// HTML with handlers, a javascript: link, an SVG with onload, an iframe with srcdoc.
const payloads = [
  `<img src=x onerror="window.__xss='img'">`,
  `[click me](javascript:window.__xss='link')`,
  `<svg onload="window.__xss='svg'"></svg>`,
  `<iframe srcdoc="<script>parent.__xss='iframe'</script>"></iframe>`,
  `<script>window.__xss='script'</script>`,
].join("\n\n");
const scenario = await api("POST", "/v1/scenarios", {
  kind: "Scenario", metadata: { name: "notes", title: "Notes" },
  spec: { template: "lab", steps: [
    { title: "Write a note", text: `# Write a note\n\nPut **hello** into \`/root/notes.txt\`.\n\n${payloads}\n`,
      check: "cat /root/notes.txt && grep -qx hello /root/notes.txt" },
    { title: "Well done", text: "That was *all*." },
  ] } }, ivyToken);
assert.equal(scenario.status, 201, scenario.text);
const workshop = await api("POST", "/v1/workshops", { name: "notes-class", title: "Notes class", scenario: "notes",
                                                      duration_seconds: 3600, max_participants: 3 }, ivyToken);
assert.equal(workshop.status, 201, workshop.text);
const workshopId = workshop.json.id;
const code = (await api("POST", `/v1/workshops/${workshopId}/codes`, {}, ivyToken)).json.code;

async function person() {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  page.setDefaultTimeout(20000);
  await page.evaluateOnNewDocument(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return { ctx, page, seen: watch(page) };
}
const ivy = await person();
const ada = await person();
let current = ada.page;
t.onFailureShoot((name) => t.shot(current, name));

try {
  await t.step("participant: joins by code and reads the step as rendered markdown", async () => {
    await ada.page.goto(`${base}/join#${code}`, { waitUntil: "load" });
    await ada.page.waitForSelector("#join-name");
    await ada.page.type("#join-name", "Ada");
    await ada.page.click("form.join button[type=submit]");
    await ada.page.waitForSelector(".steps:not([hidden]) .step-text h1", { timeout: 40000 });
    assert.equal(await ada.page.$eval(".steps .step-text h1", (el) => el.textContent), "Write a note");
    assert.equal(await ada.page.$eval(".steps .step-text strong", (el) => el.textContent), "hello");
    assert.match(await ada.page.$eval(".steps .step-where", (el) => el.textContent), /Notes · step 1 of 2/);
    // Next waits for the check.
    assert.equal(await ada.page.$eval("#step-next", (el) => el.disabled), true);
  });

  await t.step("participant: no payload of the markdown runs or survives", async () => {
    const leftovers = await ada.page.evaluate(() => {
      const text = document.querySelector(".steps .step-text");
      return {
        handlers: [...text.querySelectorAll("*")].flatMap((el) => [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => a.name)),
        scripts: text.querySelectorAll("script, iframe, object, embed").length,
        jsLinks: [...text.querySelectorAll("a")].filter((a) => /^\s*javascript:/i.test(a.getAttribute("href") || "")).length,
      };
    });
    assert.deepEqual(leftovers, { handlers: [], scripts: 0, jsLinks: 0 });
    // Clicking what is left of the link runs nothing either.
    const link = await ada.page.$(".steps .step-text a");
    if (link) await link.click().catch(() => {});
    await sleep(300);
    assert.equal(await ada.page.evaluate(() => window.__xss), undefined);
    await t.shot(ada.page, "step");
  });

  await t.step("participant: the check fails with its output, passes after the fix, and Next moves on", async () => {
    // The check runs in their environment: it opens (with its terminal) once it runs.
    await ada.page.waitForSelector(".xterm", { timeout: 40000 });
    await ada.page.click("#step-check");
    await ada.page.waitForSelector(".check-result .notice.error", { timeout: 40000 });
    const failed = await ada.page.$eval(".check-result", (el) => el.textContent);
    assert.match(failed, /Check failed \(attempt 1\)/);
    assert.match(await ada.page.$eval(".check-output", (el) => el.textContent), /notes\.txt/);
    await t.shot(ada.page, "check-failed");
    // The fix, made in their session (through the API, as their terminal would).
    const mine = await ada.page.evaluate(async () => (await fetch("/v1/me/workshop")).json());
    const sid = mine.participant.session.id;
    const fix = await api("POST", `/v1/sessions/${sid}/exec?owner=${mine.participant.user_id}`, { command: "echo hello > /root/notes.txt" });
    assert.equal(fix.status, 200, fix.text);
    await ada.page.click("#step-check");
    await ada.page.waitForSelector(".check-result .notice.success");
    assert.match(await ada.page.$eval(".check-result", (el) => el.textContent), /Check passed \(attempt 2\)/);
    assert.equal(await ada.page.$eval(".check-output", (el) => el.textContent), "hello\n");
    await t.shot(ada.page, "check-passed");
    await ada.page.waitForFunction(() => !document.querySelector("#step-next").disabled);
    await ada.page.click("#step-next");
    await ada.page.waitForFunction(() => document.querySelector("#step-title")?.textContent === "Well done");
    assert.equal(await ada.page.$eval(".steps .step-text em", (el) => el.textContent), "all");
  });

  await t.step("instructor: the dashboard shows the participant's progress", async () => {
    current = ivy.page;
    await signIn(ivy.page, base, ivyToken, "table.sessions, .sessions-list, #filter-q");
    await ivy.page.goto(`${base}/#/w/${encodeURIComponent(workshopId)}`, { waitUntil: "load" });
    await ivy.page.waitForSelector("table.progress tbody tr");
    const row = await ivy.page.$eval("table.progress tbody tr", (tr) => [...tr.cells].map((c) => c.textContent));
    assert.equal(row[0], "Ada");
    assert.match(row[1], /^notes: 2\/2 Well done$/);
    assert.equal(row[2], "1/2");
    await t.shot(ivy.page, "progress", true);
  });

  await t.step("nothing ran that should not have", async () => {
    for (const who of [ivy, ada]) {
      assert.equal(await who.page.evaluate(() => window.__xss), undefined);
      assert.deepEqual(who.seen.errors, []);
      assert.deepEqual(who.seen.alerts, []);
    }
  });
} finally {
  await closeBrowser();
  await api("POST", `/v1/workshops/${workshopId}/cancel`, {});
  const ps = (await api("GET", `/v1/workshops/${workshopId}/participants`)).json?.participants || [];
  for (const p of ps) {
    if (!p.session_id) continue;
    for (let i = 0; i < 50; i++) {
      const r = await api("DELETE", `/v1/sessions/${p.session_id}?purge=true`);
      if (r.status !== 409) break;
      await sleep(100);
    }
  }
  if (t.failures) console.log("serve log (tail):\n" + srv.log().slice(-4000));
  await srv.stop(t.failures > 0);
}
process.exit(t.finish("scenario-results.txt"));
