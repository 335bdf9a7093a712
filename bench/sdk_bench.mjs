// The Node half of bench/sdk_bench.py: raw fetch and @hutch/sdk, create → exec `true` → delete,
// then exec `true` alone, interleaved in rounds. Prints {loop, exec}, each {samples: {name: [ms,
// …]}, cpu: {name: seconds}}, as JSON. Args: URL TOKEN N ROUNDS.
import { Client } from "../sdk/typescript/dist/index.js";

const [url, token, nArg, roundsArg] = process.argv.slice(2);
const n = Number(nArg);
const rounds = Number(roundsArg);
const h = {
  Authorization: `Bearer ${token}`,
  "Content-Type": "application/json",
};

async function call(method, path, body) {
  const r = await fetch(url + path, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300)
    throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

async function raw() {
  const { id } = await call("POST", "/v1/sessions", {});
  if (
    (await call("POST", `/v1/sessions/${id}/exec`, { cmd: ["true"] }))
      .exit_code !== 0
  )
    throw new Error("exec");
  await call("DELETE", `/v1/sessions/${id}`);
}

const client = new Client({ url, token });
async function sdk() {
  const s = await client.createSession();
  if ((await s.commands.run(["true"])).exitCode !== 0) throw new Error("exec");
  await s.delete();
}

async function measure(loops) {
  const samples = Object.fromEntries(Object.keys(loops).map((k) => [k, []]));
  const cpu = Object.fromEntries(Object.keys(loops).map((k) => [k, 0]));
  for (const fn of Object.values(loops))
    for (let i = 0; i < 10; i++) await fn();
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(loops)) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n / rounds; i++) {
        const t0 = performance.now();
        await fn();
        samples[name].push(performance.now() - t0);
      }
      const c = process.cpuUsage(c0);
      cpu[name] += (c.user + c.system) / 1e6;
    }
  }
  return { samples, cpu };
}

const loop = await measure({
  "raw HTTP (Node fetch)": raw,
  "TypeScript SDK (@hutch/sdk)": sdk,
});
const { id } = await call("POST", "/v1/sessions", {});
const s = await client.createSession();
const exec = await measure({
  "raw HTTP (Node fetch)": async () => {
    if (
      (await call("POST", `/v1/sessions/${id}/exec`, { cmd: ["true"] }))
        .exit_code !== 0
    )
      throw new Error("exec");
  },
  "TypeScript SDK (@hutch/sdk)": async () => {
    if ((await s.commands.run(["true"])).exitCode !== 0)
      throw new Error("exec");
  },
});
await call("DELETE", `/v1/sessions/${id}`);
await s.delete();
process.stdout.write(JSON.stringify({ loop, exec }));
