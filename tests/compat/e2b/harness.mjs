// What the E2B compatibility tests share: a real `hutch serve` on a temp data dir and port 0
// (its admin token is the E2B API key), and named steps that go on after a failure.
import { sleep, startHutch } from "../../testing/hutch_serve.mjs";

export { sleep };

// Exits 77 (skipped) without root: sandboxes need namespaces, mounts and cgroups.
export function requireRoot() {
  if (process.getuid() !== 0) { console.log("SKIP: needs root (namespaces, mounts, cgroups)"); process.exit(77); }
}

export async function startServer(hutch, env = {}) {
  const hutchServer = await startHutch(hutch, "hutch-e2b-", env);
  const { base, adminToken: token } = hutchServer;
  return {
    ...hutchServer, token,
    // Sandboxes outlive their server: whatever a failed step left is deleted first.
    async stop() {
      await deleteAllSessions(base, token);
      await hutchServer.stop();
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
