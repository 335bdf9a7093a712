// Starts a real `hutch serve` for the suite: port 0, a temp data dir named hutch-* (so
// tests/leaks sees anything left), the admin token from DATA_DIR/admin.token. stop() purges every
// session through the API, then SIGTERMs the server and removes the data dir.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export async function startServer() {
  const binary = process.env.HUTCH_BINARY ?? join(root, "build/release/src/exe/hutch");
  const dataDir = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), "hutch-sdk-ts-"));
  const log = openSync(join(dataDir, "serve.log"), "a");
  // No rate limit: the suite makes many changing calls a second, and a 429 (retried only for
  // idempotent calls) must never decide a result.
  const config = join(dataDir, "config.yaml");
  writeFileSync(config, "rate_limit:\n  per_second: 0\n");
  const proc = spawn(
    binary,
    ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--config", config],
    {
      stdio: ["ignore", log, log],
    },
  );
  let exited = false;
  proc.on("exit", () => (exited = true));
  const deadline = Date.now() + 60_000;
  const addrFile = join(dataDir, "listen.addr");
  while (Date.now() < deadline) {
    if (existsSync(addrFile)) {
      const addr = readFileSync(addrFile, "utf8").trim();
      if (addr) {
        const url = `http://${addr}`;
        const token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
        return { url, token, dataDir, stop: () => stop(proc, url, token, dataDir) };
      }
    }
    if (exited)
      throw new Error(
        `hutch serve exited at start:\n${readFileSync(join(dataDir, "serve.log"), "utf8")}`,
      );
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("hutch serve did not write listen.addr in 60 s");
}

async function stop(proc, url, token, dataDir) {
  const h = { Authorization: `Bearer ${token}` };
  try {
    const r = await fetch(`${url}/v1/sessions?include_deleted=true&limit=1000`, { headers: h });
    for (const s of (await r.json()).sessions) {
      await fetch(`${url}/v1/sessions/${s.id}?purge=true`, { method: "DELETE", headers: h });
    }
  } catch {
    // the server is gone already: nothing to purge through it
  }
  if (proc.exitCode === null && proc.signalCode === null) {
    const done = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await done;
  }
  if (!process.env.HUTCH_KEEP_TEST_DIRS) rmSync(dataDir, { recursive: true, force: true });
}
