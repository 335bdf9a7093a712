// The envd part of hutch's E2B API in Connect's binary encoding, from a client built on hutch's
// own .proto files (src/e2b/proto, compiled to a descriptor set by the build) with
// @connectrpc/connect-node over HTTP/1.1: the same process and filesystem calls E2B's SDK makes
// in JSON (sdk_test.mjs), plus the client-streaming StreamInput, the polled watchers and the
// access token's refusals.
// Usage: scripts/node tests/compat/e2b/binary_test.mjs <hutch binary> <envd descriptor set>
import { readFileSync } from "node:fs";
import http from "node:http";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { requireRoot, startServer, stepper, check, eventually } from "./harness.mjs";

requireRoot();
const [hutch, descriptors] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptors)));
const ProcessService = registry.getService("process.Process");
const FilesystemService = registry.getService("filesystem.Filesystem");
// Host routing on: {port}-{sandbox id}.e2b.test reaches the sandbox (the Host header says it).
const DOMAIN = "e2b.test";
const srv = await startServer(hutch, { HUTCH_PROXY_BASE_DOMAIN: DOMAIN });
const enc = new TextEncoder();
const dec = new TextDecoder();

async function createSandbox() {
  const res = await fetch(`${srv.base}/e2b/v2/sandboxes`, {
    method: "POST", headers: { "X-API-Key": srv.token, "Content-Type": "application/json" },
    body: JSON.stringify({ templateID: "base", timeout: 300, allow_internet_access: false }),
  });
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${await res.text()}`);
  return res.json();
}

// Envd's clients for a sandbox: by E2b-Sandbox-Id under /e2b/envd, or (hostRouted) at the
// server's root with the Host 49983-{id}.<domain>, as the SDKs reach envd without
// E2B_SANDBOX_URL.
function clients(sandboxId, token, hostRouted = false) {
  const transport = createConnectTransport({
    baseUrl: hostRouted ? srv.base : `${srv.base}/e2b/envd`, httpVersion: "1.1", useBinaryFormat: true,
    interceptors: [(next) => async (req) => {
      if (hostRouted) req.header.set("Host", `49983-${sandboxId}.${DOMAIN}`);
      else req.header.set("E2b-Sandbox-Id", sandboxId);
      req.header.set("X-Access-Token", token);
      return next(req);
    }],
  });
  return { proc: createClient(ProcessService, transport), fs: createClient(FilesystemService, transport) };
}

// Reads a Start or Connect stream to its end: pid, stdout, stderr, pty output, the end event.
async function drain(stream, onEvent) {
  const out = { pid: 0, stdout: "", stderr: "", pty: "", end: null };
  for await (const r of stream) {
    const e = r.event.event;
    if (e.case === "start") out.pid = e.value.pid;
    else if (e.case === "data") out[e.value.output.case] += dec.decode(e.value.output.value);
    else if (e.case === "end") out.end = e.value;
    if (onEvent && (await onEvent(e, out))) break;
  }
  return out;
}

const sh = (script, extra = {}) => ({ process: { cmd: "/bin/sh", args: ["-c", script] }, ...extra });
const s = stepper();
const sandboxes = [];

try {
  const a = await createSandbox();
  sandboxes.push(a.sandboxID);
  const { proc, fs } = clients(a.sandboxID, a.envdAccessToken);

  await s.step("Start streams start, stdout, stderr and the exit code", async () => {
    const r = await drain(proc.start(sh("echo out; echo err >&2; exit 5")));
    check(r.pid > 0, `pid ${r.pid}`);
    check(r.stdout === "out\n" && r.stderr === "err\n", `output ${JSON.stringify(r)}`);
    check(r.end && r.end.exitCode === 5 && r.end.exited && r.end.status === "exit status 5", `end ${JSON.stringify(r.end)}`);
  });

  await s.step("a tagged process outlives its stream: List, then Connect by tag", async () => {
    const ac = new AbortController();
    const first = await drain(proc.start(sh("sleep 1.5; echo bg", { tag: "bg" }), { signal: ac.signal }),
                              (e) => e.case === "start");
    ac.abort();
    const list = await proc.list({});
    check(list.processes.some((p) => p.pid === first.pid && p.tag === "bg"), `list ${JSON.stringify(list.processes.map((p) => [p.pid, p.tag]))}`);
    const r = await drain(proc.connect({ process: { selector: { case: "tag", value: "bg" } } }));
    check(r.pid === first.pid && r.stdout === "bg\n" && r.end.exitCode === 0, `connect ${JSON.stringify(r)}`);
  });

  await s.step("SendInput, CloseStdin and SendSignal reach the process", async () => {
    let pid = 0;
    const r = await drain(proc.start(sh("cat; echo closed", { stdin: true })), async (e, out) => {
      if (e.case === "start") {
        pid = e.value.pid;
        await proc.sendInput({ process: { selector: { case: "pid", value: pid } }, input: { input: { case: "stdin", value: enc.encode("abc\n") } } });
      }
      if (e.case === "data" && out.stdout === "abc\n") await proc.closeStdin({ process: { selector: { case: "pid", value: pid } } });
    });
    check(r.stdout === "abc\nclosed\n" && r.end.exitCode === 0, `cat ${JSON.stringify(r)}`);
    const killed = await drain(proc.start(sh("sleep 30")), async (e) => {
      if (e.case === "start") await proc.sendSignal({ process: { selector: { case: "pid", value: e.value.pid } }, signal: 9 });
    });
    check(killed.end.exitCode === -1 && !killed.end.exited && killed.end.status === "signal: killed", `killed ${JSON.stringify(killed.end)}`);
  });

  await s.step("StreamInput (client streaming over HTTP/1.1) writes to stdin", async () => {
    let pid = 0;
    const r = await drain(proc.start(sh("head -n 2", { stdin: true })), async (e) => {
      if (e.case !== "start") return;
      pid = e.value.pid;
      async function* input() {
        yield { event: { case: "start", value: { process: { selector: { case: "pid", value: pid } } } } };
        yield { event: { case: "data", value: { input: { input: { case: "stdin", value: enc.encode("one\n") } } } } };
        yield { event: { case: "data", value: { input: { input: { case: "stdin", value: enc.encode("two\n") } } } } };
      }
      await proc.streamInput(input());
    });
    check(r.stdout === "one\ntwo\n" && r.end.exitCode === 0, `head ${JSON.stringify(r)}`);
  });

  await s.step("a PTY: input typed, size updated, output as pty data", async () => {
    const r = await drain(proc.start({ process: { cmd: "/bin/sh", args: [] }, pty: { size: { cols: 80, rows: 24 } } }),
      async (e, out) => {
        if (e.case === "start") {
          const pid = e.value.pid;
          await proc.update({ process: { selector: { case: "pid", value: pid } }, pty: { size: { cols: 91, rows: 33 } } });
          await proc.sendInput({ process: { selector: { case: "pid", value: pid } }, input: { input: { case: "pty", value: enc.encode("stty size; exit 7\n") } } });
        }
      });
    check(r.pty.includes("33 91"), `pty output ${JSON.stringify(r.pty)}`);
    check(r.stdout === "" && r.end.exitCode === 7, `end ${JSON.stringify(r.end)} stdout ${JSON.stringify(r.stdout)}`);
  });

  await s.step("filesystem: MakeDir, Stat, ListDir, Move, Remove", async () => {
    const made = await fs.makeDir({ path: "/tmp/bin/d" });
    check(made.entry.type === 2 && made.entry.path === "/tmp/bin/d", `makeDir ${made.entry.type} ${made.entry.path}`);
    let err;
    try { await fs.makeDir({ path: "/tmp/bin/d" }); } catch (e) { err = e; }
    check(err instanceof ConnectError && err.code === Code.AlreadyExists, `second makeDir ${err}`);
    await drain(proc.start(sh("printf 12345 > /tmp/bin/d/f; ln -s f /tmp/bin/d/l")));
    const st = await fs.stat({ path: "/tmp/bin/d/f" });
    check(st.entry.type === 1 && st.entry.size === 5n && st.entry.name === "f" && st.entry.permissions.startsWith("-rw"), `stat ${st.entry}`);
    check(st.entry.modifiedTime && st.entry.modifiedTime.seconds > 1_600_000_000n, "modified time");
    const list = await fs.listDir({ path: "/tmp/bin", depth: 2 });
    const paths = list.entries.map((e) => e.path).sort();
    check(JSON.stringify(paths) === '["/tmp/bin/d","/tmp/bin/d/f","/tmp/bin/d/l"]', `listDir ${paths}`);
    check(list.entries.find((e) => e.name === "l").symlinkTarget === "f", "symlink target");
    const moved = await fs.move({ source: "/tmp/bin/d/f", destination: "/tmp/bin/g" });
    check(moved.entry.path === "/tmp/bin/g", `move ${moved.entry.path}`);
    await fs.remove({ path: "/tmp/bin/d" });
    err = null;
    try { await fs.stat({ path: "/tmp/bin/d" }); } catch (e) { err = e; }
    check(err instanceof ConnectError && err.code === Code.NotFound, `stat of removed ${err}`);
  });

  await s.step("WatchDir streams events; CreateWatcher/GetWatcherEvents/RemoveWatcher poll them", async () => {
    await fs.makeDir({ path: "/tmp/w" });
    const { watcherId } = await fs.createWatcher({ path: "/tmp/w", recursive: false });
    const ac = new AbortController();
    const seen = [];
    const watching = (async () => {
      try {
        for await (const r of fs.watchDir({ path: "/tmp/w" }, { signal: ac.signal })) {
          if (r.event.case === "start") await drain(proc.start(sh("echo x > /tmp/w/new.txt")));
          if (r.event.case === "filesystem") seen.push(r.event.value);
        }
      } catch (e) { if (!ac.signal.aborted) throw e; }
    })();
    await eventually("a streamed event for new.txt", () => seen.some((e) => e.name === "new.txt"));
    ac.abort();
    await watching;
    check(seen.some((e) => e.name === "new.txt" && e.type === 1), `streamed ${JSON.stringify(seen)}`);
    let polled = [];
    await eventually("a polled event for new.txt", async () => {
      polled = polled.concat((await fs.getWatcherEvents({ watcherId })).events);
      return polled.some((e) => e.name === "new.txt");
    });
    await fs.removeWatcher({ watcherId });
    let err;
    try { await fs.getWatcherEvents({ watcherId }); } catch (e) { err = e; }
    check(err instanceof ConnectError && err.code === Code.NotFound, `removed watcher ${err}`);
  });

  await s.step("host routing: 49983-{id}.<domain> is envd, {port}-{id}.<domain> the sandbox's port", async () => {
    const viaHost = clients(a.sandboxID, a.envdAccessToken, true);
    const r = await drain(viaHost.proc.start(sh("echo via-host")));
    check(r.stdout === "via-host\n", `via host ${JSON.stringify(r)}`);
    let err;
    try { await clients(a.sandboxID, "", true).proc.list({}); } catch (e) { err = e; }
    check(err instanceof ConnectError && err.code === Code.Unauthenticated, `host-routed without token: ${err}`);
    // What the SDKs' getHost(8000) names: the sandbox's port 8000 through hutch's proxy.
    const ac = new AbortController();
    drain(proc.start(sh("exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /tmp"), { signal: ac.signal })).catch(() => {});
    const get = () => new Promise((resolve) => {
      const req = http.request({ host: "127.0.0.1", port: new URL(srv.base).port, path: "/",
        headers: { Host: `8000-${a.sandboxID}.${DOMAIN}`, Authorization: `Bearer ${srv.token}` } }, (res) => {
        let body = "";
        res.on("data", (d) => { body += d; });
        res.on("end", () => resolve({ status: res.statusCode, body }));
      });
      req.on("error", () => resolve({ status: 0, body: "" }));
      req.end();
    });
    let last;
    await eventually("the app on port 8000", async () => { last = await get(); return last.status === 200; }, 15000);
    check(last.body.includes("Directory listing"), `app answered ${last.body.slice(0, 200)}`);
    ac.abort();
  });

  await s.step("the access token: missing, wrong, or another sandbox's is refused", async () => {
    const b = await createSandbox();
    sandboxes.push(b.sandboxID);
    for (const [id, token] of [[a.sandboxID, ""], [a.sandboxID, "0".repeat(64)], [a.sandboxID, b.envdAccessToken]]) {
      let err;
      try { await clients(id, token).proc.list({}); } catch (e) { err = e; }
      check(err instanceof ConnectError && err.code === Code.Unauthenticated, `token ${token.slice(0, 8)}: ${err}`);
    }
    const own = await clients(b.sandboxID, b.envdAccessToken).proc.list({});
    check(own.processes.length === 0, "b sees a's processes");
  });
} finally {
  for (const id of sandboxes)
    await fetch(`${srv.base}/e2b/sandboxes/${id}`, { method: "DELETE", headers: { "X-API-Key": srv.token } }).catch(() => {});
  const code = s.finish();
  if (code !== 0) console.log(srv.log().split("\n").filter((l) => /WARN|ERROR/.test(l)).slice(-30).join("\n"));
  await srv.stop();
  process.exit(code);
}
