// The TypeScript SDK against one real `hutch serve` (test/server.mjs): every method, on sessions
// reused where a test leaves them as it found them. Run by ctest as sdk/typescript.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import * as hutch from "../dist/index.js";
import { startServer } from "./server.mjs";

const { Client, Session, ConflictError, NotFoundError, InvalidArgumentError } = hutch;
const here = dirname(fileURLToPath(import.meta.url));
let server, client, shared, opts;

before(async () => {
  server = await startServer();
  opts = { url: server.url, token: server.token };
  client = new Client(opts);
  shared = await client.createSession({ name: "shared", labels: { suite: "ts" } });
});

after(async () => {
  await shared?.delete().catch(() => {});
  await server?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe("sessions", () => {
  test("create, connect, list, update, extend, history, delete", async () => {
    const s = await Session.create({
      ...opts,
      name: "life",
      labels: { k: "v" },
      env: { GREETING: "hi" },
      ttl_seconds: 600,
    });
    assert.equal(s.state, "running");
    assert.equal((await s.commands.run("echo $GREETING")).stdout, "hi\n");
    assert.equal((await Session.connect("life", opts)).id, s.id);
    assert.ok((await Session.list({ ...opts, labels: { k: "v" } })).some((x) => x.id === s.id));
    await s.update({ labels: { k: "w" } });
    assert.deepEqual(s.info.labels, { k: "w" });
    assert.ok(!(await client.listSessions({ labels: { k: "v" } })).some((x) => x.id === s.id));
    const before = s.info.expires_at;
    await s.extend(60);
    assert.ok(s.info.expires_at > before);
    await s.setTimeout(300);
    await s.keepalive();
    assert.ok((await s.history()).some((h) => h.to === "running"));
    assert.ok((await s.stats()).pids >= 1);
    assert.equal(typeof (await s.logs()), "string");
    assert.equal((await s.lineage()).session.id, s.id);
    await s.delete();
    assert.equal(s.state, "terminated");
    await s.delete();
    await assert.rejects(s.commands.run("true"), ConflictError);
  });

  test("pause, resume, stop, start, restart", async () => {
    const s = await client.createSession({ name: "cycle" });
    await s.files.write("/root/keep.txt", "kept");
    assert.equal((await s.pause()).state, "paused");
    await s.pause();
    const err = await s.commands.run("true").catch((e) => e);
    assert.ok(
      err instanceof ConflictError &&
        err.code === "conflict" &&
        err.status === 409 &&
        err.apiMessage,
    );
    assert.equal((await s.resume()).state, "running");
    assert.equal((await s.stop()).state, "stopped");
    assert.equal((await s.start()).state, "running");
    assert.equal(await s.files.read("/root/keep.txt"), "kept");
    assert.equal((await s.restart()).state, "running");
    assert.equal((await s.refresh()).state, "running");
    await s.delete();
  });

  test("typed errors carry the API's code and message", async () => {
    const e = await Session.connect("nope-nope", opts).catch((x) => x);
    assert.ok(
      e instanceof NotFoundError &&
        e.code === "not_found" &&
        e.status === 404 &&
        e.apiMessage.includes("nope-nope"),
    );
    const bad = await client.createSession({ resources: { memory_mb: "lots" } }).catch((x) => x);
    assert.ok(bad instanceof InvalidArgumentError && bad.apiMessage.includes("memory_mb"));
    await assert.rejects(
      Session.connect("x", { url: server.url, token: "hutch_wrong" }),
      hutch.UnauthenticatedError,
    );
  });

  test("checkpoint, restore, fork", async (t) => {
    const s = await client.createSession({ name: "cp" });
    try {
      await s.files.write("/root/state.txt", "one");
      let cp;
      try {
        cp = await s.checkpoint("first");
      } catch (e) {
        if (e instanceof ConflictError) return t.skip(`no session disks: ${e.message}`);
        throw e;
      }
      assert.ok(cp.name === "first" && cp.valid);
      await s.files.write("/root/state.txt", "two");
      assert.deepEqual(
        (await s.listCheckpoints()).map((c) => c.name),
        ["first"],
      );
      await s.restore("first");
      assert.equal(s.state, "running");
      assert.equal(await s.files.read("/root/state.txt"), "one");
      const kids = await s.fork(2, { namePrefix: "kid" });
      assert.deepEqual(kids.map((k) => k.name).sort(), ["kid-1", "kid-2"]);
      assert.ok(kids.every((k) => k instanceof Session && k.info.parent_id === s.id));
      assert.equal(await kids[0].files.read("/root/state.txt"), "one");
      for (const k of kids) await k.delete();
      assert.deepEqual(await s.deleteCheckpoint("first"), { deleted: "first" });
      assert.deepEqual(await s.listCheckpoints(), []);
    } finally {
      await s.delete();
    }
  });

  test("services, ports and signed URLs", async () => {
    const svc = await shared.services.create(
      "web",
      ["python3", "-m", "http.server", "8001", "--bind", "127.0.0.1", "--directory", "/root"],
      {
        port: 8001,
        restart: "on-failure",
        health: { http_path: "/" },
      },
    );
    try {
      assert.equal(svc.port, 8001);
      assert.deepEqual(
        (await shared.services.list()).map((x) => x.name),
        ["web"],
      );
      await shared.files.write("/root/hello.txt", "hello from the session");
      for (let i = 0; i < 100 && (await shared.services.get("web")).health !== "healthy"; i++)
        await sleep(100);
      assert.equal((await shared.services.get("web")).health, "healthy");
      const url = await shared.getUrl(8001, { ttlSeconds: 120 });
      assert.ok(url.startsWith(server.url) && url.includes("hutch_sig="));
      const r = await fetch(url.replace("/?", "/hello.txt?"));
      assert.equal(r.status, 200);
      assert.equal(await r.text(), "hello from the session");
      assert.equal((await fetch(shared.ports.url(8001, "hello.txt"))).status, 401);
      // A service started through POST …/services is not linked as the port's `service` (only
      // a session's own services are, today): the port shows as listening.
      assert.ok((await shared.ports.list()).some((p) => p.port === 8001 && p.listening));
      assert.equal((await shared.ports.setPublic(8001)).public, true);
      assert.equal((await fetch(shared.ports.url(8001, "hello.txt"))).status, 200);
      assert.equal((await shared.ports.setPublic(8001, false)).public, false);
      assert.equal((await shared.ports.get(8001)).public, false);
    } finally {
      await shared.services.delete("web");
      await shared.files.remove("/root/hello.txt");
    }
  });

  test("templates", async () => {
    const doc =
      'kind: SessionTemplate\nmetadata:\n  name: ts-tpl\nspec:\n  env: {FROM_TEMPLATE: "yes"}\n';
    assert.equal((await client.templates.apply(doc)).metadata.name, "ts-tpl");
    assert.ok((await client.templates.list()).some((t) => t.metadata.name === "ts-tpl"));
    const s = await client.createSession({ template: "ts-tpl" });
    assert.equal(s.info.template, "ts-tpl");
    assert.equal((await s.commands.run("echo $FROM_TEMPLATE")).stdout, "yes\n");
    await s.delete();
    await client.templates.apply({
      kind: "SessionTemplate",
      metadata: { name: "ts-tpl" },
      spec: { env: { FROM_TEMPLATE: "json" } },
    });
    assert.deepEqual((await client.templates.get("ts-tpl")).spec.env, { FROM_TEMPLATE: "json" });
    assert.deepEqual(await client.templates.delete("ts-tpl"), { deleted: "ts-tpl" });
    await assert.rejects(client.templates.get("ts-tpl"), NotFoundError);
  });

  test("volumes", async (t) => {
    let v;
    try {
      v = await client.volumes.create("tsvol", { sizeMb: 16 });
    } catch (e) {
      if (e instanceof hutch.UnavailableError) return t.skip(e.message);
      throw e;
    }
    try {
      assert.equal(v.size_mb, 16);
      assert.deepEqual(
        (await client.volumes.list()).map((x) => x.name),
        ["tsvol"],
      );
      const w = await client.createSession({ volumes: [{ volume: "tsvol", path: "/data" }] });
      await w.files.write("/data/x", "on the volume");
      assert.equal((await client.volumes.get("tsvol")).sessions[0].id, w.id);
      await w.delete();
      const r = await client.createSession({
        volumes: [{ volume: "tsvol", path: "/data", read_only: true }],
      });
      assert.equal(await r.files.read("/data/x"), "on the volume");
      await r.delete();
    } finally {
      await client.volumes.delete("tsvol");
    }
    await assert.rejects(client.volumes.get("tsvol"), NotFoundError);
  });

  test("events: a page and a stream", async () => {
    const first = await client.events.list({ session: shared.id, type: "session.ready" });
    assert.equal(first[0].type, "session.ready");
    const all = await client.events.list({ session: shared.id });
    const stream = await client.events.stream({
      session: shared.id,
      after: all.at(-1).id,
      timeoutMs: 30_000,
    });
    await shared.pause();
    await shared.resume();
    const seen = [];
    for await (const ev of stream) {
      seen.push(ev.type);
      if (ev.type === "session.resumed") break;
    }
    stream.close();
    assert.deepEqual(seen, ["session.paused", "session.resumed"]);
    assert.ok(stream.lastId);
  });

  test("me and version", async () => {
    assert.equal((await client.me()).admin, true);
    assert.equal((await client.version()).api, "v1");
  });

  test("commit and tasks", async () => {
    // Sessions of image `host` cannot be committed (their files are the host's own): the call
    // goes out and its 409 comes back typed; a task that does not exist is a 404.
    const e = await shared.commit("from-host").catch((x) => x);
    assert.ok(e instanceof ConflictError && e.apiMessage.includes("host"));
    await assert.rejects(client.tasks.get("tsk_nope"), NotFoundError);
    assert.equal((await client.getSession(shared.name)).id, shared.id);
  });
});

describe("commands", () => {
  test("string, argv, env, cwd, stdin", async () => {
    const r = await shared.commands.run("echo out; echo err >&2; exit 3");
    assert.deepEqual([r.exitCode, r.stdout, r.stderr], [3, "out\n", "err\n"]);
    assert.equal((await shared.commands.run(["printf", "%s-%s", "a", "b"])).stdout, "a-b");
    const e = await shared.commands.run("echo $X; pwd; cat", {
      env: { X: "1" },
      cwd: "/tmp",
      stdin: "in",
    });
    assert.equal(e.stdout, "1\n/tmp\nin");
  });

  test("output streams to callbacks", async () => {
    const out = [];
    const err = [];
    const r = await shared.commands.run(
      "for i in 1 2 3; do echo $i; sleep 0.05; done; echo e >&2",
      {
        onStdout: (d) => out.push(d),
        onStderr: (d) => err.push(d),
      },
    );
    assert.equal(out.join(""), "1\n2\n3\n");
    assert.ok(out.length >= 2);
    assert.equal(err.join(""), "e\n");
    assert.equal(r.exitCode, 0);
  });

  test("timeout and check", async () => {
    const r = await shared.commands.run("sleep 30", { timeoutMs: 1000 });
    assert.ok(r.timedOut && r.durationMs < 10_000);
    const e = await shared.commands.run("echo bad >&2; exit 4", { check: true }).catch((x) => x);
    assert.ok(
      e instanceof hutch.CommandExitError && e.result.exitCode === 4 && e.message.includes("bad"),
    );
  });

  test("background, reattach by tag, stdin, kill", async () => {
    const h = await shared.commands.run("for i in 1 2 3; do echo line$i; sleep 0.2; done; exit 7", {
      background: true,
      tag: "counter",
    });
    assert.ok(h.tag === "counter" && h.pid > 0);
    assert.ok((await shared.commands.list()).some((p) => p.tag === "counter"));
    const again = await shared.commands.connect("counter");
    const out = [];
    const r = await again.wait({ onStdout: (d) => out.push(d) });
    assert.equal(r.exitCode, 7);
    assert.equal(r.stdout, "line1\nline2\nline3\n");
    assert.equal(out.join(""), r.stdout);
    assert.notEqual((await again.refresh()).state, "running");
    assert.equal(await (await shared.commands.connect(h.pid)).output(), "line1\nline2\nline3\n");

    const rd = await shared.commands.run("read x; echo got $x; sleep 60", {
      background: true,
      tag: "reader",
    });
    await rd.sendStdin("hello\n");
    for (let i = 0; i < 100 && !(await rd.output()).includes("got hello"); i++) await sleep(50);
    assert.equal(await rd.output(), "got hello\n");
    await rd.kill();
    const k = await rd.wait({ timeoutMs: 20_000 });
    assert.deepEqual([k.exitCode, k.signal], [-1, 9]);
  });

  test("runCode and interrupt", async () => {
    assert.equal((await shared.commands.runCode("print(6*7)")).stdout, "42\n");
    assert.equal((await shared.commands.runCode("echo $0", { language: "bash" })).exitCode, 0);
    // Interrupted only once Python runs its loop: a SIGINT before the interpreter set up its
    // handler just kills it (signal 2, no KeyboardInterrupt).
    let ready;
    const isReady = new Promise((r) => (ready = r));
    const running = shared.commands.run(
      "python3 -u -c 'import time\nprint(\"ready\")\nwhile True: time.sleep(0.01)'",
      { onStdout: ready },
    );
    await isReady;
    assert.equal(await shared.commands.interrupt(), 1);
    assert.ok((await running).stderr.includes("KeyboardInterrupt"));
  });

  test("pty: input, resize, kill", async () => {
    let buf = "";
    const waitFor = async (text) => {
      for (let i = 0; i < 400 && !buf.includes(text); i++) await sleep(50);
      assert.ok(buf.includes(text), buf);
    };
    const pty = await shared.pty.create({
      rows: 24,
      cols: 80,
      cmd: ["/bin/sh"],
      onData: (d) => (buf += Buffer.from(d).toString()),
    });
    await pty.sendInput("tty; stty size\n");
    await waitFor("24 80");
    assert.ok(buf.includes("/dev/pts/"));
    await pty.resize(50, 132);
    await pty.sendInput("stty size\n");
    await waitFor("50 132");
    await pty.kill();
    assert.equal((await pty.wait({ timeoutMs: 20_000 })).signal, 9);
    pty.close();
    const p = await shared.pty.create({ cmd: "exit 5" });
    assert.equal((await p.wait({ timeoutMs: 20_000 })).exitCode, 5);
  });
});

describe("files", () => {
  test("write, read, list, stat, move, remove", async () => {
    const e = await shared.files.write("/work/a/b.txt", "hello", { mode: 0o600 });
    assert.deepEqual([e.size, e.mode], [5, "0600"]);
    assert.equal(await shared.files.read("/work/a/b.txt"), "hello");
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    await shared.files.write("/work/a/bin", bytes);
    assert.deepEqual(await shared.files.read("/work/a/bin", { format: "bytes" }), bytes);
    const big = new Blob([new Uint8Array(300_000).fill(120)]);
    await shared.files.write("/work/a/stream", big.stream());
    assert.equal((await shared.files.stat("/work/a/stream")).size, 300_000);
    assert.deepEqual((await shared.files.list("/work/a")).map((x) => x.name).sort(), [
      "b.txt",
      "bin",
      "stream",
    ]);
    assert.ok(
      (await shared.files.exists("/work/a/b.txt")) && !(await shared.files.exists("/work/nope")),
    );
    await shared.files.makeDir("/work/d/e");
    assert.equal((await shared.files.stat("/work/d/e")).type, "directory");
    await shared.files.move("/work/a/b.txt", "/work/d/c.txt");
    assert.equal(await shared.files.read("/work/d/c.txt"), "hello");
    await assert.rejects(shared.files.read("/work/a/b.txt"), NotFoundError);
    await assert.rejects(shared.files.remove("/work/d"), ConflictError);
    await shared.files.remove("/work", { recursive: true });
    assert.equal(await shared.files.exists("/work"), false);
  });

  test("uploadDir and downloadDir", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "sdk-ts-"));
    try {
      mkdirSync(join(tmp, "src/sub"), { recursive: true });
      writeFileSync(join(tmp, "src/top.txt"), "top");
      const deep = Buffer.alloc(70_000, 7);
      writeFileSync(join(tmp, "src/sub/deep.bin"), deep);
      symlinkSync("top.txt", join(tmp, "src/link"));
      const r = await shared.files.uploadDir(join(tmp, "src"), "/up/load");
      assert.equal(r.files, 2);
      assert.deepEqual(
        Buffer.from(await shared.files.read("/up/load/sub/deep.bin", { format: "bytes" })),
        deep,
      );
      assert.equal((await shared.files.stat("/up/load/link")).type, "symlink");
      const names = await shared.files.downloadDir("/up/load", join(tmp, "dst"));
      assert.deepEqual(names.sort(), ["link", "sub", "sub/deep.bin", "top.txt"]);
      assert.equal(readFileSync(join(tmp, "dst/top.txt"), "utf8"), "top");
      assert.deepEqual(readFileSync(join(tmp, "dst/sub/deep.bin")), deep);
      assert.equal(readlinkSync(join(tmp, "dst/link")), "top.txt");
      await shared.files.remove("/up", { recursive: true });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("watch", async () => {
    await shared.files.makeDir("/watched");
    const w = await shared.files.watch("/watched", { recursive: true, timeoutMs: 20_000 });
    await shared.files.write("/watched/new.txt", "x");
    await shared.files.remove("/watched/new.txt");
    const seen = [];
    for await (const ev of w) {
      seen.push([ev.type, ev.path]);
      if (ev.type === "deleted") break;
    }
    w.close();
    // An upload is written beside the target and renamed over it: the name appears by a move.
    assert.ok(seen.some(([t, p]) => t === "moved" && p === "/watched/new.txt"));
    assert.deepEqual(seen.at(-1), ["deleted", "/watched/new.txt"]);
    await shared.files.remove("/watched", { recursive: true });
  });
});

describe("options: retries and timeouts", () => {
  // A local server that misbehaves on purpose (the real one answers 502 on no demand).
  let flaky, plan, hits;
  before(async () => {
    flaky = createServer((req, res) => {
      hits.push(req.method);
      const status = plan.shift() ?? 200;
      if (status === "slow") return setTimeout(() => res.end("{}"), 2000);
      const body =
        status === 200
          ? { id: "ses_x", name: "x", state: "running" }
          : {
              error: {
                code: status === 429 ? "resource_exhausted" : "unavailable",
                message: `status ${status}`,
              },
            };
      res.writeHead(status, {
        "Content-Type": "application/json",
        ...(status === 429 ? { "Retry-After": "0.01" } : {}),
      });
      res.end(JSON.stringify(body));
    });
    await new Promise((r) => flaky.listen(0, "127.0.0.1", r));
  });
  after(() => flaky.close());
  const url = () => `http://127.0.0.1:${flaky.address().port}`;

  test("idempotent calls are retried, others not, and retries are an option", async () => {
    [plan, hits] = [[502, 429], []];
    assert.equal((await Session.connect("x", { url: url(), token: "t", retries: 2 })).id, "ses_x");
    assert.equal(hits.length, 3);
    [plan, hits] = [[502], []];
    const e = await Session.connect("x", { url: url(), token: "t", retries: 0 }).catch((x) => x);
    assert.ok(e.status === 502 && hits.length === 1);
    [plan, hits] = [[429, 429, 429], []];
    const r = await Session.connect("x", { url: url(), token: "t", retries: 2 }).catch((x) => x);
    assert.ok(
      r instanceof hutch.ResourceExhaustedError && r.retryAfter === 0.01 && hits.length === 3,
    );
    [plan, hits] = [[502], []];
    await assert.rejects(Session.create({ url: url(), token: "t", retries: 5 }));
    assert.equal(hits.length, 1);
  });

  test("timeouts and connection errors", async () => {
    [plan, hits] = [["slow"], []];
    const t0 = Date.now();
    await assert.rejects(
      Session.connect("x", { url: url(), token: "t", timeoutMs: 200, retries: 0 }),
      hutch.TimeoutError,
    );
    assert.ok(Date.now() - t0 < 1500);
    await assert.rejects(
      Session.connect("x", { url: "http://127.0.0.1:9", token: "t", retries: 1 }),
      hutch.ConnectionError,
    );
  });
});

test("the README's example runs as written", async () => {
  const readme = readFileSync(join(here, "../README.md"), "utf8");
  const code = readme.match(/```ts\n([\s\S]*?)```/)[1];
  assert.ok(code.trim().split("\n").length <= 10);
  // Inside the package, so `@hutch/sdk` resolves to it (a package's self-reference).
  const file = join(here, "../.readme-example.mts");
  writeFileSync(file, code);
  try {
    const out = execFileSync(process.execPath, [file], {
      env: { ...process.env, HUTCH_URL: server.url, HUTCH_TOKEN: server.token },
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.match(out, /^ses_\w+ hello world/);
  } finally {
    rmSync(file, { force: true });
  }
});
