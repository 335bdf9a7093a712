// What the E2B compatibility tests share: a real `hutch serve` on a temp data dir and port 0
// (its admin token is the E2B API key), and named steps that go on after a failure.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Exits 77 (skipped) without root: sandboxes need namespaces, mounts and cgroups.
export function requireRoot() {
  if (process.getuid() !== 0) { console.log("SKIP: needs root (namespaces, mounts, cgroups)"); process.exit(77); }
}

export async function startServer(hutch, env = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "hutch-e2b-"));
  const server = spawn(hutch, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "info"],
                       { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
  let log = "";
  server.stderr.on("data", (d) => { log += d; });
  let base = null;
  for (let i = 0; i < 600 && !base; i++) {
    if (existsSync(join(dataDir, "listen.addr"))) base = "http://" + readFileSync(join(dataDir, "listen.addr"), "utf8").trim();
    else await sleep(50);
  }
  if (!base) { server.kill("SIGKILL"); throw new Error("hutch serve did not start:\n" + log); }
  const token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  async function api(method, path, body) {
    const res = await fetch(base + path, {
      method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json, text };
  }
  return {
    base, token, api, log: () => log,
    // Sandboxes outlive their server: whatever a failed step left is deleted first.
    async stop() {
      await deleteAllSessions(base, token);
      server.kill("SIGTERM");
      await new Promise((r) => server.once("exit", r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function deleteAllSessions(base, token) {
  const headers = { Authorization: `Bearer ${token}` };
  try {
    const list = await (await fetch(`${base}/v1/sessions?limit=1000`, { headers })).json();
    for (const s of list.sessions || [])
      if (!["terminated", "cancelled"].includes(s.state))
        await fetch(`${base}/v1/sessions/${s.id}`, { method: "DELETE", headers });
  } catch { /* the server is gone: nothing more to do */ }
}

export function stepper() {
  const results = [];
  let failures = 0;
  const started = Date.now();
  return {
    async step(name, fn) {
      const t0 = Date.now();
      try {
        await fn();
        results.push(`ok   ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failures++;
        results.push(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
      }
      console.log(results[results.length - 1]);
    },
    finish() {
      console.log(`${results.length - failures}/${results.length} steps passed in ${Date.now() - started} ms`);
      return failures === 0 ? 0 : 1;
    },
  };
}

export function check(cond, what) {
  if (!cond) throw new Error(what);
}

export async function eventually(what, fn, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
