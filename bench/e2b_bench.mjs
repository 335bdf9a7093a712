// create → run `true` → kill, one sandbox at a time, three ways against one hutch server the
// bench starts itself: hutch's own API (POST /v1/sessions, …/exec, DELETE), and E2B's own SDK
// (the `e2b` package pinned in tests/compat/e2b) pointed at hutch's /e2b — once with
// `allowInternetAccess: false` (network none, as hutch's own default) and once with the SDK's
// default (internet access: network nat). Rounds interleave the three, so they share the
// machine's noise. Prints a table (or JSON with -o json). Needs root.
// Usage: scripts/node bench/e2b_bench.mjs <hutch binary> [-n N] [-o text|json]
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deleteAllSessions } from "../tests/compat/e2b/harness.mjs";

const args = process.argv.slice(2);
const hutch = args[0];
const opt = (name, def) => { const i = args.indexOf(name); return i > 0 ? args[i + 1] : def; };
const n = Number(opt("-n", "30"));
const output = opt("-o", "text");
const warmup = 2;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dataDir = mkdtempSync(join(tmpdir(), "hutch-e2b-bench-"));
writeFileSync(join(dataDir, "config.yaml"), "rate_limit: {per_second: 0}\n");
const server = spawn(hutch, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--config",
                             join(dataDir, "config.yaml"), "--log-level", "warn"], { stdio: ["ignore", "ignore", "inherit"] });
let base = null;
for (let i = 0; i < 600 && !base; i++) {
  if (existsSync(join(dataDir, "listen.addr"))) base = "http://" + readFileSync(join(dataDir, "listen.addr"), "utf8").trim();
  else await sleep(50);
}
if (!base) {
  server.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
  throw new Error("hutch serve did not start");
}
const token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
process.env.E2B_API_URL = `${base}/e2b`;
process.env.E2B_SANDBOX_URL = `${base}/e2b/envd`;
process.env.E2B_API_KEY = token;
const { Sandbox } = await import(new URL("../tests/compat/e2b/node_modules/e2b/dist/index.mjs", import.meta.url));

async function call(method, path, body) {
  const r = await fetch(base + path, {
    method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

const loops = {
  "hutch API": async () => {
    const { id } = await call("POST", "/v1/sessions", { ttl_seconds: 900 });
    const r = await call("POST", `/v1/sessions/${id}/exec`, { cmd: ["true"] });
    if (r.exit_code !== 0) throw new Error(`true exited ${r.exit_code}`);
    await call("DELETE", `/v1/sessions/${id}`);
  },
  "E2B SDK, no internet": async () => {
    const sbx = await Sandbox.create({ allowInternetAccess: false, timeoutMs: 900_000 });
    const r = await sbx.commands.run("true");
    if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
    await sbx.kill();
  },
  "E2B SDK, default (internet: nat)": async () => {
    const sbx = await Sandbox.create({ timeoutMs: 900_000 });
    const r = await sbx.commands.run("true");
    if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
    await sbx.kill();
  },
};

const samples = Object.fromEntries(Object.keys(loops).map((k) => [k, []]));
try {
  for (let round = 0; round < warmup + n; round++) {
    for (const [name, loop] of Object.entries(loops)) {
      const t0 = performance.now();
      await loop();
      if (round >= warmup) samples[name].push(performance.now() - t0);
    }
  }
} finally {
  // Sandboxes outlive their server: a loop that failed half way may have left one.
  await deleteAllSessions(base, token);
  server.kill("SIGTERM");
  await new Promise((r) => server.once("exit", r));
  rmSync(dataDir, { recursive: true, force: true });
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const rows = Object.entries(samples).map(([name, xs]) => ({
  name, n: xs.length, p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99),
  mean: xs.reduce((a, b) => a + b, 0) / xs.length,
}));
if (output === "json") {
  console.log(JSON.stringify({ n, rows, samples }, null, 2));
} else {
  console.log(`create → run \`true\` → kill, one at a time, n=${n} each (ms)`);
  console.log("| loop | n | p50 | p90 | p99 | mean |\n|---|---|---|---|---|---|");
  for (const r of rows)
    console.log(`| ${r.name} | ${r.n} | ${r.p50.toFixed(1)} | ${r.p90.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.mean.toFixed(1)} |`);
}
