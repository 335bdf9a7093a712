// Browser tests of the console's workshop and account pages (issue 20 items 6–8), as an
// instructor, a participant and an admin meet them: a real `hutch serve`, Debian's headless
// Chromium through puppeteer-core, one browser context (cookie jar) per person.
//
//   scripts/node tests/browser/workshop_test.mjs HUTCH_BINARY ARTIFACT_DIR
//
// Screenshots go to ARTIFACT_DIR as workshop-*.png. Needs root and /usr/bin/chromium; exits 77
// (skipped) without either.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { prepare, startServer, launchBrowser, stepper, watch, signIn, sleep,
         waitForTerminal, typeInTerminal, terminalText } from "./harness.mjs";

const [hutch, artifacts] = process.argv.slice(2);
if (!hutch || !artifacts) {
  console.error("usage: workshop_test.mjs HUTCH_BINARY ARTIFACT_DIR");
  process.exit(2);
}
prepare(artifacts, /^workshop-.*\.png$/);
// A rate card, and usage read every second, so the costs panel has something to show.
const config = join(mkdtempSync(join(tmpdir(), "hutch-workshop-config-")), "config.yaml");
writeFileSync(config, "metering:\n  interval_seconds: 1\nrates:\n  currency: EUR\n  cpu_hour: 0.04\n" +
                      "  memory_gib_hour: 0.005\n  platform_participant_hour: 0.25\n");
const srv = await startServer(hutch, {}, ["--config", config]);
const { base, api } = srv;
const { browser, close: closeBrowser } = await launchBrowser();
const t = stepper(artifacts, "workshop-");

// The people: Ivy teaches, an admin administers; participants come with a code.
assert.equal((await api("POST", "/v1/users", { name: "ivy", role: "instructor" })).status, 201);
const ivyToken = (await api("POST", "/v1/tokens?owner=ivy", { name: "browser" })).json.token;
const lab = await api("POST", "/v1/templates", { kind: "SessionTemplate", metadata: { name: "lab", description: "the class" },
                                                 spec: { resources: { cpus: 0.5, memory_mb: 256 } } }, ivyToken);
assert.equal(lab.status, 201, lab.text);

async function person(viewport = { width: 1280, height: 800 }) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport(viewport);
  page.setDefaultTimeout(20000);
  await page.evaluateOnNewDocument(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return { ctx, page, seen: watch(page, answers) };
}
const answers = { prompt: "" };
const ivy = await person();
const ada = await person();
const admin = await person();
let current = ivy.page;
t.onFailureShoot((name) => t.shot(current, name));

// A participant name that is a script payload: every page must show it as text.
const adaName = `Ada <img src=x onerror="window.__xss=1">`;
let workshopId = null;
let code = null;
let adaSession = null;

try {
  await t.step("instructor: sign in, create a workshop from the form", async () => {
    current = ivy.page;
    await signIn(ivy.page, base, ivyToken, "table.sessions, .sessions-list, #filter-q");
    await ivy.page.click('a[href="#/workshops"]');
    await ivy.page.waitForSelector("#ws-name");
    await ivy.page.waitForFunction(() => document.querySelector("#ws-template option")?.value === "lab");
    await ivy.page.type("#ws-name", "class");
    await ivy.page.type("#ws-title", "Shell basics");
    await t.shot(ivy.page, "workshops");
    await ivy.page.click("form.create button[type=submit]");
    await ivy.page.waitForSelector(".session-head h1");
    assert.equal(await ivy.page.$eval(".session-head h1", (el) => el.textContent), "Shell basics");
    workshopId = decodeURIComponent(ivy.page.url().split("#/w/")[1]);
    assert.match(workshopId, /^wks_/);
  });

  await t.step("instructor: a join code with its link and a QR code", async () => {
    await ivy.page.click("section[aria-labelledby=codes-title] form button[type=submit]");
    await ivy.page.waitForSelector("svg.qr path");
    code = await ivy.page.$eval(".join-code", (el) => el.textContent);
    assert.match(code, /^[A-Z0-9]{4}-[A-Z0-9]{4}$/);
    const link = await ivy.page.$eval(".join-link", (el) => el.textContent);
    assert.equal(link, `${base}/join#${code}`);
    const qr = await ivy.page.$eval("svg.qr", (el) => ({ label: el.getAttribute("aria-label"), d: el.querySelector("path").getAttribute("d").length,
                                                         box: el.getAttribute("viewBox") }));
    assert.ok(qr.d > 500, "the QR code has modules");
    assert.match(qr.box, /^0 0 (\d+) \1$/);
    assert.match(qr.label, new RegExp(code));
    // A QR reader gets the join link back from the pixels the page drew.
    const png = join(artifacts, "workshop-qr.png");
    await (await ivy.page.$("svg.qr")).screenshot({ path: png });
    const read = spawnSync("zbarimg", ["-q", "--raw", png], { encoding: "utf8" });
    assert.equal(read.error, undefined, "zbarimg is missing: run scripts/setup");
    assert.equal(read.stdout.trim(), link);
  });

  await t.step("instructor: a CSV with bad lines imports nobody and lists each line; a good one imports", async () => {
    await ivy.page.type("#csv-text", "name,email\nGrace Hopper,grace@example.com\n,nobody@example.com\nBob,bob-at-example\n");
    await ivy.page.click("form.csv-import button[type=submit]");
    await ivy.page.waitForSelector(".csv-report li");
    const report = await ivy.page.$$eval(".csv-report li", (els) => els.map((e) => e.textContent));
    assert.deepEqual(report, ["line 3: name is empty", "line 4: email 'bob-at-example' is not an email address"]);
    assert.match(await ivy.page.$eval(".csv-report p", (el) => el.textContent), /2 of the CSV's lines are wrong, nothing was imported/);
    await t.shot(ivy.page, "csv-report");
    await ivy.page.$eval("#csv-text", (el) => { el.value = ""; });
    await ivy.page.type("#csv-text", "name,email\nGrace Hopper,grace@example.com\n");
    await ivy.page.click("form.csv-import button[type=submit]");
    await ivy.page.waitForFunction(() => [...document.querySelectorAll(".participants .participant-name")].some((td) => td.textContent === "Grace Hopper"));
  });

  await t.step("participant: joins by code with the join link, gets their terminal", async () => {
    current = ada.page;
    await ada.page.goto(`${base}/join#${code}`, { waitUntil: "load" });
    await ada.page.waitForSelector("#join-name");
    assert.equal(await ada.page.$eval("#join-code", (el) => el.value), code);
    await t.shot(ada.page, "join");
    await ada.page.type("#join-name", adaName);
    await ada.page.type("#join-email", "ada@example.com");
    await ada.page.click("form.join button[type=submit]");
    await ada.page.waitForSelector(".clock");
    assert.equal(new URL(ada.page.url()).hash, "#/me");
    // The participant token went into the cookie: not in a URL, storage or document.cookie.
    const cookies = await ada.ctx.cookies();
    assert.ok(cookies.some((c) => c.name === "hutch_console" && c.httpOnly));
    assert.equal(await ada.page.evaluate(() => document.cookie + JSON.stringify({ ...localStorage })), "{}");
    // Their environment is made at once (the workshop runs): the terminal opens when it runs.
    await waitForTerminal(ada.page, (s) => /[#$] *$/m.test(s), "a prompt", 40000);
    await typeInTerminal(ada.page, "echo joined-$((6*7))\n");
    await waitForTerminal(ada.page, (s) => s.split("\n").some((l) => l.trim() === "joined-42"), "joined-42");
    assert.match(await ada.page.$eval(".clock", (el) => el.textContent), /left$/);
    assert.equal(await ada.page.$eval(".whoami", (el) => el.textContent), adaName);
    // The welcome names them as text and gives their access link to come back with.
    const welcome = await ada.page.$eval("main .notice.info", (el) => el.textContent);
    assert.ok(welcome.includes(adaName) && welcome.includes(`${base}/access#`), welcome);
    assert.equal(await ada.page.$(".notice.error"), null);
    const mine = await ada.page.evaluate(async () => (await fetch("/v1/me/workshop")).json());
    adaSession = mine.participant.session.id;
    await t.shot(ada.page, "participant");
  });

  await t.step("instructor: the dashboard shows the participant (name as text), running and seen", async () => {
    current = ivy.page;
    await ivy.page.waitForFunction((name) => {
      const row = [...document.querySelectorAll(".participants tbody tr")].find((r) => r.querySelector(".participant-name")?.textContent === name);
      return row && row.querySelector(".badge")?.textContent === "running" && /ago$/.test(row.querySelector(".last-seen").textContent);
    }, { timeout: 30000 }, adaName);
    const row = (name) => ivy.page.evaluate((n) => [...document.querySelectorAll(".participants tbody tr")]
      .find((r) => r.querySelector(".participant-name")?.textContent === n)?.querySelector(".last-seen").textContent, name);
    assert.match(await row(adaName), /^online /);
    // The activity feed (GET …/activity, then followed live) has her environment starting and
    // the command she types while the instructor watches, as her shell ran it, as text.
    await typeInTerminal(ada.page, "echo still-here\n");
    await ivy.page.waitForFunction((name) => {
      const items = [...document.querySelectorAll("ol.feed li")].filter((li) => li.querySelector(".feed-name")?.textContent === name);
      return items.some((li) => li.dataset.type === "session.started") &&
        items.some((li) => li.dataset.type === "shell.command" && li.querySelector(".feed-command")?.textContent === "echo still-here");
    }, { timeout: 20000 }, adaName);
    await ivy.page.type("#feed-who", "grace");
    await ivy.page.waitForFunction(() => [...document.querySelectorAll("ol.feed li .feed-name")].every((n) => n.textContent === "Grace Hopper"));
    await ivy.page.$eval("#feed-who", (el) => { el.value = ""; el.dispatchEvent(new Event("input")); });
    assert.equal(await ivy.page.evaluate(() => document.querySelectorAll("img[onerror]").length), 0);
    assert.equal(await ivy.page.evaluate(() => window.__xss), undefined);
    await ivy.page.evaluate(() => window.scrollTo(0, 0));
    await t.shot(ivy.page, "dashboard", true);
    // Narrow: the grid keeps each participant's state and actions in view.
    await ivy.page.setViewport({ width: 480, height: 800 });
    const visible = await ivy.page.$$eval(".participants thead th", (ths) => ths.filter((th) => th.offsetWidth > 0).map((th) => th.textContent));
    assert.deepEqual(visible, ["", "Name", "Environment", "Last seen", "Actions"]);
    await t.shot(ivy.page, "dashboard-narrow");
    await ivy.page.setViewport({ width: 1280, height: 800 });
  });

  await t.step("instructor: bulk checkpoint with per-participant results, then extend", async () => {
    answers.prompt = "after-lab";
    await ivy.page.click(".bulk button[data-op=checkpoint]");
    await ivy.page.waitForSelector(".bulk-results tbody tr");
    const rows = await ivy.page.$$eval(".bulk-results tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.equal(rows.length, 2, JSON.stringify(rows));
    const adaRow = rows.find((r) => r[0] === adaName);
    assert.deepEqual(adaRow, [adaName, adaSession, "ok"]);
    const ck = await api("GET", `/v1/sessions/${adaSession}/checkpoints`);
    assert.ok(ck.json.checkpoints.some((c) => c.name === "after-lab"), ck.text);
    await t.shot(ivy.page, "bulk-results");
    const before = (await api("GET", `/v1/workshops/${workshopId}`)).json.end_at;
    await ivy.page.click(".bulk button[data-op=extend]");
    await ivy.page.waitForFunction(() => /^extend: /.test(document.querySelector(".bulk-results-head")?.textContent || ""));
    const after = (await api("GET", `/v1/workshops/${workshopId}`)).json.end_at;
    assert.equal(Date.parse(after) - Date.parse(before), 900 * 1000);
  });

  await t.step("instructor: a notice reaches the participant's screen; a refusal is shown in the API's words", async () => {
    const ps = (await api("GET", `/v1/workshops/${workshopId}/participants`, undefined, ivyToken)).json.participants;
    const adaId = ps.find((p) => p.name === adaName).id;
    await ivy.page.waitForFunction((pid) => !!document.querySelector(`#notice-to option[value="${pid}"]`), {}, adaId);
    await ivy.page.select("#notice-to", adaId);
    await ivy.page.type("#notice-subject", "Lunch <b>break</b>");
    await ivy.page.type("#notice-body", "Back at 13:00, {name}!");
    await ivy.page.click("form.notice-form button[type=submit]");
    await ivy.page.waitForFunction(() => document.querySelector("section[aria-labelledby=ws-notices-title] .notice.info")?.textContent === "Sent to 1 participant.");
    await ivy.page.waitForFunction(() => [...document.querySelectorAll(".notices-sent tbody tr")]
      .some((tr) => tr.querySelector(".notice-subject").textContent === "Lunch <b>break</b>"));
    const sent = await ivy.page.$$eval(".notices-sent tbody tr", (trs) => trs.map((tr) => [...tr.cells].slice(1).map((c) => c.textContent)));
    assert.deepEqual(sent[0], ["message", "Lunch <b>break</b>", adaName]);
    // Ada's screen, open all along, shows it with her name filled in, as text.
    current = ada.page;
    await ada.page.waitForFunction(() => [...document.querySelectorAll(".notice-list li")]
      .some((li) => li.querySelector(".notice-subject")?.textContent === "Lunch <b>break</b>"), { timeout: 20000 });
    const shown = await ada.page.$eval(".notice-list li", (li) => [li.querySelector(".notice-subject").textContent, li.querySelector(".notice-body").textContent]);
    assert.deepEqual(shown, ["Lunch <b>break</b>", `Back at 13:00, ${adaName}!`]);
    assert.equal(await ada.page.evaluate(() => document.querySelectorAll("main b, img[onerror]").length), 0);
    await t.shot(ada.page, "participant-notice");
    // A participant removed while the instructor writes to them: the API's refusal, as it says it.
    current = ivy.page;
    const temp = await api("POST", `/v1/workshops/${workshopId}/participants`, { name: "Temp" }, ivyToken);
    assert.equal(temp.status, 201, temp.text);
    const tempId = temp.json.participants[0].id;
    await ivy.page.waitForFunction((pid) => !!document.querySelector(`#notice-to option[value="${pid}"]`), { timeout: 10000 }, tempId);
    await ivy.page.select("#notice-to", tempId);
    await ivy.page.type("#notice-subject", "Hint");
    await ivy.page.type("#notice-body", "look at /etc");
    assert.equal((await api("DELETE", `/v1/workshops/${workshopId}/participants/${tempId}`, undefined, ivyToken)).status, 200);
    await ivy.page.click("form.notice-form button[type=submit]");
    await ivy.page.waitForSelector("section[aria-labelledby=ws-notices-title] .notice.error");
    const refusal = await api("POST", `/v1/workshops/${workshopId}/messages`, { subject: "Hint", body: "look at /etc", participant: tempId }, ivyToken);
    assert.equal(refusal.status, 404, refusal.text);
    assert.equal(await ivy.page.$eval("section[aria-labelledby=ws-notices-title] .notice.error", (el) => el.textContent), refusal.json.error.message);
  });

  await t.step("instructor: the costs panel agrees with GET /costs, per participant too", async () => {
    const before = (await api("GET", `/v1/workshops/${workshopId}/costs`, undefined, ivyToken)).json;
    // Wait for a page refresh that read the costs after `before` (the answer's time is in data-at).
    await ivy.page.waitForFunction((at) => Date.parse(document.querySelector(".costs-summary")?.dataset.at || 0) > Date.parse(at),
                                   { timeout: 15000 }, before.at);
    const page = await ivy.page.evaluate(() => ({
      at: document.querySelector(".costs-summary").dataset.at,
      total: document.querySelector(".cost-total").textContent,
      projected: document.querySelector(".cost-projected").textContent,
      rows: [...document.querySelectorAll("table.costs tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent)) }));
    const after = (await api("GET", `/v1/workshops/${workshopId}/costs`, undefined, ivyToken)).json;
    const amount = (text) => { const [v, cur] = text.split(" "); assert.equal(cur, after.currency, text); return Number(v); };
    // Spending only grows: the page's total lies between the two reads around it.
    const total = amount(page.total), projected = amount(page.projected);
    assert.ok(total > 0, page.total);
    assert.ok(total >= before.total - 5e-5 && total <= after.total + 5e-5, `${before.total} ≤ ${total} ≤ ${after.total}`);
    // The projection carries the spend on to end_at as the API defines it.
    const f = (Date.parse(after.end_at) - Date.parse(after.start_at)) / (Date.parse(page.at) - Date.parse(after.start_at));
    assert.ok(Math.abs(projected - total * f) <= 0.05 * projected + 1e-4, `projected ${projected}, total ${total} × ${f.toFixed(3)}`);
    assert.ok(projected > total, `${projected} > ${total}`);
    // One row per participant of the API's answer; the rows add up to the class.
    assert.deepEqual(page.rows.map((r) => r[0]).sort(), after.participants.map((p) => p.name ?? "a removed participant").sort());
    const sum = page.rows.reduce((a, r) => a + amount(r[5]), 0);
    assert.ok(Math.abs(sum - total) <= 1e-4 * page.rows.length, `${sum} vs ${total}`);
    const adaRow = page.rows.find((r) => r[0] === adaName);
    assert.ok(amount(adaRow[6]) >= amount(adaRow[5]), adaRow.join(" | "));
    await ivy.page.$eval("section[aria-labelledby=ws-notices-title]", (el) => el.scrollIntoView());
    await t.shot(ivy.page, "notices-costs");
  });

  await t.step("instructor: opens a participant's environment from the grid, acting for them", async () => {
    // By the keyboard: the grid refreshes every five seconds and must keep the focus where it is.
    await ivy.page.evaluate((label) => [...document.querySelectorAll(".participants a")].find((a) => a.getAttribute("aria-label") === label).focus(),
                            `Open the environment of ${adaName}`);
    await sleep(5500);
    assert.equal(await ivy.page.evaluate(() => document.activeElement.getAttribute("aria-label")), `Open the environment of ${adaName}`);
    await ivy.page.keyboard.press("Enter");
    await ivy.page.waitForSelector(".session-head h1");
    assert.match(await ivy.page.$eval("main .notice.info", (el) => el.textContent), /^Acting for usr_/);
    // The participant's own terminal, watched read-only: its scrollback shows what she typed,
    // and what the instructor types there is not sent.
    await waitForTerminal(ivy.page, (s) => s.includes("joined-42"), "the participant's terminal, replayed");
    assert.match(await ivy.page.$eval(".term-tab[aria-selected=true]", (el) => el.textContent), /read-only/);
    assert.equal(await ivy.page.$eval(".term-state", (el) => el.textContent), "read-only");
    await typeInTerminal(ivy.page, "echo typed-by-$((1+1))-ivy\n");
    await sleep(300);
    assert.ok(!(await terminalText(ivy.page)).includes("typed-by-2-ivy"));
    // A terminal of the instructor's own in the participant's session takes the keyboard.
    await ivy.page.click(".terminals button[aria-label='New terminal']");
    // Its tab is the one shown and connected before anything is read or typed: until then the
    // read-only one may still be the terminal on screen.
    await ivy.page.waitForFunction(() => {
      const tab = document.querySelector(".term-tab[aria-selected=true]");
      return tab && !/read-only/.test(tab.textContent) &&
        document.querySelectorAll(".terminal-host:not([hidden])").length === 1 &&
        document.querySelector(".term-state")?.textContent === "connected";
    }, { timeout: 20000 });
    await waitForTerminal(ivy.page, (s) => /[#$] *$/m.test(s), "a prompt in the participant's session");
    await typeInTerminal(ivy.page, "echo helped > /root/from-ivy; echo ivy-$((6*7))\n");
    await waitForTerminal(ivy.page, (s) => s.split("\n").some((l) => l.trim() === "ivy-42"), "ivy-42");
    const r = await api("GET", `/v1/sessions/${adaSession}/files?path=/root/from-ivy`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, "helped\n");
    await t.shot(ivy.page, "acting-for-participant");
    await ivy.page.goBack();
    await ivy.page.waitForSelector(".participants");
  });

  await t.step("participant: an access link signs in elsewhere and its secret leaves the address bar", async () => {
    const participants = (await api("GET", `/v1/workshops/${workshopId}/participants`, undefined, ivyToken)).json.participants;
    const p = participants.find((x) => x.name === adaName);
    const link = (await api("POST", `/v1/workshops/${workshopId}/participants/${p.id}/access-link`, undefined, ivyToken)).json.access_url;
    const other = await person({ width: 420, height: 800 });
    current = other.page;
    try {
      await other.page.goto(base + link, { waitUntil: "load" });
      await other.page.waitForSelector(".clock");
      assert.ok(!other.page.url().includes(link.split("#")[1]), other.page.url());
      await waitForTerminal(other.page, (s) => /[#$] *$/m.test(s), "a prompt");
      await t.shot(other.page, "participant-narrow");
      // That participant's cookie opens their session and nobody else's.
      const grace = participants.find((x) => x.name === "Grace Hopper");
      const status = await other.page.evaluate(async (id) => (await fetch(`/v1/sessions/${id}`)).status, grace.session_id);
      assert.equal(status, 404);
      // Nor her terminal: the WebSocket upgrade is refused.
      const ws = await other.page.evaluate((id) => new Promise((resolve) => {
        const sock = new WebSocket(`ws://${location.host}/v1/sessions/${id}/exec/ws`);
        sock.onopen = () => resolve("opened");
        sock.onclose = (e) => resolve(`closed ${e.code}`);
      }), grace.session_id);
      assert.equal(ws, "closed 1006");
      // Their own terminal's upgrade works with the same cookie (the refusal above is not a fluke).
      const own = await other.page.evaluate((id) => new Promise((resolve) => {
        const sock = new WebSocket(`ws://${location.host}/v1/sessions/${id}/exec/ws`);
        sock.onopen = () => { sock.close(); resolve("opened"); };
        sock.onclose = (e) => resolve(`closed ${e.code}`);
      }), adaSession);
      assert.equal(own, "opened");
      const wrong = await person();
      await wrong.page.goto(`${base}/access#not-a-secret`, { waitUntil: "load" });
      await wrong.page.waitForSelector(".notice.error");
      assert.equal(await wrong.page.$eval(".notice.error", (el) => el.textContent).then((s) => s.length > 0), true);
      await wrong.ctx.close();
    } finally {
      await other.ctx.close();
    }
  });

  await t.step("admin: users, tokens and the audit trail pages", async () => {
    current = admin.page;
    await signIn(admin.page, base, srv.adminToken, "#filter-q");
    await admin.page.click('a[href="#/admin/users"]');
    await admin.page.waitForFunction(() => [...document.querySelectorAll("td.session-name")].some((td) => td.textContent === "ivy"));
    await admin.page.type("#user-name", "bob");
    await admin.page.click("form.card button[type=submit]");
    await admin.page.waitForFunction(() => [...document.querySelectorAll("td.session-name")].some((td) => td.textContent === "bob"));
    // The API's refusal in its own words: bob exists already.
    await admin.page.type("#user-name", "bob");
    await admin.page.click("form.card button[type=submit]");
    await admin.page.waitForSelector(".notice.error");
    const refusal = await api("POST", "/v1/users", { name: "bob" });
    assert.equal(await admin.page.$eval(".notice.error", (el) => el.textContent), refusal.json.error.message);
    await admin.page.click("button[aria-label='Disable bob']");
    await admin.page.waitForSelector("button[aria-label='Enable bob']");
    assert.equal((await api("GET", "/v1/users/bob")).json.disabled, true);
    await t.shot(admin.page, "users");

    await admin.page.click('a[href="#/tokens"]');
    await admin.page.waitForSelector("#token-name");
    await admin.page.type("#token-name", "ci-<b>x</b>");
    await admin.page.click("form.create button[type=submit]");
    await admin.page.waitForSelector(".token-once input");
    const shown = await admin.page.$eval(".token-once input", (el) => el.value);
    assert.equal((await api("GET", "/v1/me", undefined, shown)).status, 200, "the token shown once works");
    await admin.page.waitForFunction(() => [...document.querySelectorAll("td")].some((td) => td.textContent === "ci-<b>x</b>"));
    assert.equal(await admin.page.evaluate(() => document.querySelectorAll("main b").length), 0);
    await t.shot(admin.page, "tokens");
    await admin.page.click("button[aria-label='Revoke token ci-<b>x</b>']");
    await admin.page.waitForFunction(() => !document.querySelector("button[aria-label='Revoke token ci-<b>x</b>']"));
    assert.equal((await api("GET", "/v1/me", undefined, shown)).status, 401);

    await admin.page.click('a[href="#/audit"]');
    await admin.page.waitForFunction(() => [...document.querySelectorAll("table.audit td")].some((td) => td.textContent === "users.disable"));
    await admin.page.type("#audit-user", "ivy");
    await admin.page.click("form.filters button[type=submit]");
    await admin.page.waitForFunction(() => {
      const actions = [...document.querySelectorAll("table.audit tbody tr td:nth-child(3)")].map((td) => td.textContent);
      return actions.length > 0 && actions.includes("workshops.create") && !actions.includes("users.disable");
    });
    await t.shot(admin.page, "audit");
  });

  await t.step("instructor: ends the workshop from its page; the environments go", async () => {
    current = ivy.page;
    await ivy.page.bringToFront();
    await ivy.page.goto(`${base}/#/w/${workshopId}`);
    await ivy.page.waitForSelector(".session-head h1");
    await ivy.page.evaluate(() => [...document.querySelectorAll(".session-head button")].find((b) => b.textContent === "End now").click());
    await ivy.page.waitForFunction(() => ["ending", "completed"].includes(document.querySelector(".session-head .badge")?.textContent));
    const w = (await api("GET", `/v1/workshops/${workshopId}`)).json;
    assert.ok(["ending", "completed"].includes(w.state), w.state);
    assert.equal(await ivy.page.evaluate(() => [...document.querySelectorAll(".session-head button")].some((b) => b.textContent === "End now")), false);
  });

  await t.step("keyboard: the join form is reachable and labelled; nothing ran that should not", async () => {
    const p = await person();
    current = p.page;
    await p.page.goto(`${base}/join`, { waitUntil: "load" });
    await p.page.waitForSelector("#join-code");
    // Focus starts in the code field; Tab walks the labelled fields to the button.
    const walk = [];
    for (let i = 0; i < 4; i++) {
      walk.push(await p.page.evaluate(() => {
        const el = document.activeElement;
        return el.labels?.[0]?.querySelector(".field-label")?.textContent || el.textContent;
      }));
      await p.page.keyboard.press("Tab");
    }
    assert.deepEqual(walk, ["Join code", "Your name", "E-mail", "Join"]);
    await p.page.type("#join-code", "NOPE-NOPE");
    await p.page.keyboard.press("Tab");
    await p.page.keyboard.type("Someone");
    await p.page.keyboard.press("Enter");
    await p.page.waitForSelector(".notice.error");
    const said = await api("POST", "/v1/join", { code: "NOPE-NOPE", name: "Someone" });
    assert.equal(await p.page.$eval(".notice.error", (el) => el.textContent), said.json.error.message);
    await p.ctx.close();
    for (const who of [ivy, ada, admin]) {
      assert.equal(await who.page.evaluate(() => window.__xss), undefined);
      assert.deepEqual(await who.page.evaluate(() => window.__csp), []);
      assert.deepEqual(who.seen.csp, []);
      assert.deepEqual(who.seen.errors, []);
      assert.deepEqual(who.seen.alerts, []);
    }
  });
} finally {
  await closeBrowser();
  // Sandboxes outlive their server by design: remove the test's before stopping it. The
  // workshop is cancelled first (so nothing makes new ones), then every participant's session is
  // purged (the admin's token reaches them all).
  if (workshopId) {
    await api("POST", `/v1/workshops/${workshopId}/cancel`, {});
    const ps = (await api("GET", `/v1/workshops/${workshopId}/participants`)).json?.participants || [];
    for (const p of ps) {
      if (!p.session_id) continue;
      for (let i = 0; i < 50; i++) {
        const r = await api("DELETE", `/v1/sessions/${p.session_id}?purge=true`);
        if (r.status !== 409) break;  // still being ended by the cancel
        await sleep(100);
      }
    }
  }
  if (t.failures) console.log("serve log (tail):\n" + srv.log().slice(-4000));
  await srv.stop(t.failures > 0);
  rmSync(dirname(config), { recursive: true, force: true });
}
process.exit(t.finish("workshop-results.txt"));
