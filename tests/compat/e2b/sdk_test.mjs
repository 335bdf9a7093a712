// E2B's own JavaScript SDK (the `e2b` package pinned in package-lock.json), unchanged, against a
// hutch server: only E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY point it there.
// Usage: scripts/node tests/compat/e2b/sdk_test.mjs <hutch binary>
import { requireRoot, startServer, stepper, check, eventually, sleep } from "./harness.mjs";

requireRoot();
const hutch = process.argv[2];
const srv = await startServer(hutch);
process.env.E2B_API_URL = `${srv.base}/e2b`;
process.env.E2B_SANDBOX_URL = `${srv.base}/e2b/envd`;
process.env.E2B_API_KEY = srv.token;
const { Sandbox, CommandExitError, NotFoundError } = await import("e2b");

const s = stepper();
let sbx;
const enc = new TextEncoder();
const dec = new TextDecoder();

try {
  await s.step("Sandbox.create with metadata, envs and a timeout", async () => {
    // No internet (network none): nat would need the host's nat subnet free, which other test
    // servers on a shared machine may hold; bench/e2b_bench.mjs runs the default (nat) too.
    sbx = await Sandbox.create({ metadata: { suite: "compat" }, envs: { GREETING: "hello-e2b" }, timeoutMs: 300_000,
                                 allowInternetAccess: false });
    check(/^[a-z2-7]{16}$/.test(sbx.sandboxId), `sandbox id ${sbx.sandboxId} is not DNS-safe`);
    const info = await sbx.getInfo();
    check(info.state === "running", `state ${info.state}`);
    check(info.metadata.suite === "compat", `metadata ${JSON.stringify(info.metadata)}`);
  });

  await s.step("commands.run: output, stderr, envs and exit codes", async () => {
    const r = await sbx.commands.run("echo $GREETING; echo to-stderr >&2");
    check(r.exitCode === 0, `exit ${r.exitCode}`);
    check(r.stdout === "hello-e2b\n", `stdout ${JSON.stringify(r.stdout)}`);
    check(r.stderr === "to-stderr\n", `stderr ${JSON.stringify(r.stderr)}`);
    let err;
    try { await sbx.commands.run("echo partial; exit 3"); } catch (e) { err = e; }
    check(err instanceof CommandExitError, `exit 3 threw ${err}`);
    check(err.exitCode === 3 && err.stdout === "partial\n", `exit ${err.exitCode} stdout ${JSON.stringify(err.stdout)}`);
    const streamed = [];
    await sbx.commands.run("for i in 1 2 3; do echo line$i; done", { onStdout: (d) => streamed.push(d) });
    check(streamed.join("") === "line1\nline2\nline3\n", `onStdout ${JSON.stringify(streamed)}`);
  });

  await s.step("commands.run background: list, disconnect, connect, sendStdin, kill", async () => {
    const h = await sbx.commands.run("sleep 1.5; echo later", { background: true });
    check(h.pid > 0, `pid ${h.pid}`);
    const listed = await sbx.commands.list();
    check(listed.some((p) => p.pid === h.pid && p.cmd === "/bin/bash"), `list ${JSON.stringify(listed)}`);
    await h.disconnect();
    const again = await sbx.commands.connect(h.pid);
    const r = await again.wait();
    check(r.stdout === "later\n", `reconnected stdout ${JSON.stringify(r.stdout)}`);

    const cat = await sbx.commands.run("cat", { background: true, stdin: true });
    await sbx.commands.sendStdin(cat.pid, "typed\n");
    await eventually("cat's echo", () => cat.stdout === "typed\n");
    check(await sbx.commands.kill(cat.pid), "kill answered false");
    let err;
    try { await cat.wait(); } catch (e) { err = e; }
    check(err instanceof CommandExitError && err.exitCode === -1, `killed cat ended with ${err}`);
    check(!(await sbx.commands.kill(cat.pid)), "a second kill found the process");
  });

  await s.step("sendStdin of 2 MiB to cat while its output streams back", async () => {
    let got = 0;
    const h = await sbx.commands.run("cat", { background: true, stdin: true, onStdout: (d) => { got += d.length; } });
    await sbx.commands.sendStdin(h.pid, ("x".repeat(1023) + "\n").repeat(2048));
    await eventually("all of it echoed", () => got === 2 << 20, 20000);
    await sbx.commands.closeStdin(h.pid);
    const r = await h.wait();
    check(r.exitCode === 0, `cat ended ${r.exitCode}`);
  });

  await s.step("files: write, read, list, exists, getInfo, makeDir, rename, remove", async () => {
    const w = await sbx.files.write("/tmp/e2b/hello.txt", "hello file");
    check(w.path === "/tmp/e2b/hello.txt", `write answered ${JSON.stringify(w)}`);
    check((await sbx.files.read("/tmp/e2b/hello.txt")) === "hello file", "read back");
    const bytes = await sbx.files.read("/tmp/e2b/hello.txt", { format: "bytes" });
    check(bytes.length === 10, `bytes ${bytes.length}`);
    await sbx.files.write([{ path: "/tmp/e2b/a.txt", data: "A" }, { path: "/tmp/e2b/b.txt", data: enc.encode("B") }]);
    const names = (await sbx.files.list("/tmp/e2b")).map((e) => e.name).sort();
    check(JSON.stringify(names) === '["a.txt","b.txt","hello.txt"]', `list ${names}`);
    check(await sbx.files.exists("/tmp/e2b/a.txt"), "exists a.txt");
    check(!(await sbx.files.exists("/tmp/e2b/none")), "exists none");
    const info = await sbx.files.getInfo("/tmp/e2b/hello.txt");
    check(info.type === "file" && info.size === 10, `getInfo ${JSON.stringify(info)}`);
    check(await sbx.files.makeDir("/tmp/e2b/sub"), "makeDir new");
    check(!(await sbx.files.makeDir("/tmp/e2b/sub")), "makeDir existing answered true");
    const moved = await sbx.files.rename("/tmp/e2b/a.txt", "/tmp/e2b/sub/a.txt");
    check(moved.path === "/tmp/e2b/sub/a.txt", `rename ${JSON.stringify(moved)}`);
    await sbx.files.remove("/tmp/e2b/b.txt");
    check(!(await sbx.files.exists("/tmp/e2b/b.txt")), "removed b.txt");
    let err;
    try { await sbx.files.read("/tmp/e2b/missing"); } catch (e) { err = e; }
    check(err instanceof NotFoundError, `read of a missing file threw ${err}`);
    const r = await sbx.commands.run("cat /tmp/e2b/sub/a.txt /tmp/e2b/hello.txt");
    check(r.stdout === "Ahello file", `the command saw ${JSON.stringify(r.stdout)}`);
  });

  await s.step("files.watchDir sees a file written by a command", async () => {
    const events = [];
    const w = await sbx.files.watchDir("/tmp/e2b", (e) => events.push(e));
    await sbx.commands.run("echo x > /tmp/e2b/watched.txt");
    await eventually("a watch event for watched.txt", () => events.some((e) => e.name === "watched.txt"));
    await w.stop();
    check(events.some((e) => e.name === "watched.txt" && (e.type === "create" || e.type === "write")),
          `events ${JSON.stringify(events)}`);
  });

  await s.step("pty.create, sendInput, resize, kill", async () => {
    let out = "";
    const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += dec.decode(d); } });
    check(term.pid > 0, `pty pid ${term.pid}`);
    await sbx.pty.sendInput(term.pid, enc.encode("echo pty-$((6*7))\n"));
    await eventually("the terminal's answer", () => out.includes("pty-42"));
    await sbx.pty.resize(term.pid, { cols: 100, rows: 30 });
    await sbx.pty.sendInput(term.pid, enc.encode("stty size\n"));
    await eventually("the new size", () => out.includes("30 100"));
    check(await sbx.pty.kill(term.pid), "pty kill answered false");
  });

  await s.step("setTimeout and Sandbox.list by metadata", async () => {
    await sbx.setTimeout(120_000);
    const info = await sbx.getInfo();
    const left = info.endAt.getTime() - Date.now();
    check(left > 100_000 && left <= 121_000, `endAt is ${left} ms away`);
    const page = await Sandbox.list({ query: { metadata: { suite: "compat" } } }).nextItems();
    check(page.some((x) => x.sandboxId === sbx.sandboxId), `list ${JSON.stringify(page)}`);
    const none = await Sandbox.list({ query: { metadata: { suite: "other" } } }).nextItems();
    check(none.length === 0, `list by other metadata ${JSON.stringify(none)}`);
  });

  await s.step("getMetrics and isRunning", async () => {
    const m = await sbx.getMetrics();
    check(m.length === 1 && m[0].memUsed > 0 && m[0].memTotal >= m[0].memUsed && m[0].cpuCount >= 1,
          `metrics ${JSON.stringify(m)}`);
    check(await sbx.isRunning(), "isRunning");
  });

  await s.step("fork: the child starts from a copy of the files", async () => {
    await sbx.files.write("/tmp/forked.txt", "from the parent");
    const [child] = await sbx.fork();
    check(child instanceof Sandbox && child.sandboxId !== sbx.sandboxId, `fork answered ${child}`);
    try {
      check((await child.files.read("/tmp/forked.txt")) === "from the parent", "the child's copy");
      await child.files.write("/tmp/forked.txt", "changed in the child");
      check((await sbx.files.read("/tmp/forked.txt")) === "from the parent", "the parent's file changed");
    } finally {
      await child.kill();
    }
  });

  await s.step("pause, then connect resumes it", async () => {
    await sbx.commands.run("echo kept > /tmp/kept.txt");
    check(await sbx.pause(), "pause answered false");
    check((await sbx.getInfo()).state === "paused", "state after pause");
    check(!(await sbx.isRunning()), "isRunning while paused");
    const back = await Sandbox.connect(sbx.sandboxId);
    check((await back.getInfo()).state === "running", "state after connect");
    const r = await back.commands.run("cat /tmp/kept.txt");
    check(r.stdout === "kept\n", `after resume ${JSON.stringify(r.stdout)}`);
  });

  await s.step("kill", async () => {
    await sbx.kill();
    check(!(await Sandbox.kill(sbx.sandboxId)), "a second kill found the sandbox");
    let err;
    try { await Sandbox.getInfo(sbx.sandboxId); } catch (e) { err = e; }
    check(err && /not found/i.test(err.message), `getInfo after kill: ${err}`);
    sbx = null;
  });
} finally {
  if (sbx) await sbx.kill().catch(() => {});
  const code = s.finish();
  if (code !== 0) console.log(srv.log().split("\n").filter((l) => /WARN|ERROR/.test(l)).slice(-30).join("\n"));
  await srv.stop();
  process.exit(code);
}
