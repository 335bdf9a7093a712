// A real `hutch serve` for the JavaScript tests (browser, E2B compatibility): a temp data dir,
// port 0, the admin token it writes, and the API called with a token. No dependencies, so any
// test directory may import it.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `prefix` names the temp data dir ("hutch-browser-"); `env` is added to the server's, `args`
// to its command line (e.g. ["--config", file]).
export async function startHutch(hutch, prefix, env = {}, args = []) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const server = spawn(hutch, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "info", ...args],
                       { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
  let log = "";
  server.stderr.on("data", (d) => { log += d; });
  let base = null;
  for (let i = 0; i < 600 && !base; i++) {
    if (existsSync(join(dataDir, "listen.addr"))) base = "http://" + readFileSync(join(dataDir, "listen.addr"), "utf8").trim();
    else await sleep(50);
  }
  if (!base) { server.kill("SIGKILL"); throw new Error("hutch serve did not start:\n" + log); }
  const adminToken = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  async function api(method, path, body, token = adminToken, contentType = "application/json") {
    const res = await fetch(base + path, {
      method, headers: { Authorization: `Bearer ${token}`, "Content-Type": contentType },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json, text, headers: res.headers };
  }
  return {
    base, adminToken, api, dataDir, log: () => log,
    // Stops the server; its data dir goes too unless `keepData`.
    async stop(keepData) {
      server.kill("SIGTERM");
      await new Promise((r) => server.once("exit", r));
      if (!keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
