#!/usr/bin/python3
"""What an SDK costs: the create → exec `true` → delete loop through each SDK beside the same
three calls as raw HTTP on one keep-alive connection; then exec `true` alone on a running
session, the hot path where an SDK's own cost shows most.

    /usr/bin/python3 bench/sdk_bench.py [-n 300] [--hutch build/release/src/exe/hutch]

Starts its own `hutch serve` (temp data dir, no rate limit) unless given --url/--token. Python:
raw `http.client`, the sync `Session`, the async `AsyncSession`, interleaved in rounds so
neighbours' noise falls on all alike; Node (scripts/node bench/sdk_bench.mjs): raw `fetch` and
`@hutch/sdk`, interleaved the same way. Prints p50/p99 per loop and each SDK's ratio to the raw
loop of its own language, and the client process's CPU time per loop (user + system: what the
SDK itself costs, which neighbours' load on the server barely moves). Needs root (the server's
sandboxes) and sdk/typescript built."""

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
from urllib.parse import urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "sdk", "python"))
sys.path.insert(0, os.path.join(ROOT, "sdk", "python", "tests"))

import hutch  # noqa: E402
from server import HutchServer  # noqa: E402


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Raw:
    def __init__(self, url, token):
        u = urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port)
        self.h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers=self.h)
        r = self.conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
        return json.loads(data)

    def loop(self):
        sid = self.call("POST", "/v1/sessions", {})["id"]
        self.exec(sid)
        self.call("DELETE", f"/v1/sessions/{sid}")

    def exec(self, sid):
        assert self.call("POST", f"/v1/sessions/{sid}/exec", {"cmd": ["true"]})["exit_code"] == 0


def sdk_loop(client):
    s = hutch.Session.create(client=client)
    assert s.commands.run(["true"]).exit_code == 0
    s.delete()


async def async_loop(client):
    s = await hutch.AsyncSession.create(client=client)
    assert (await s.commands.run(["true"])).exit_code == 0
    await s.delete()


async def async_exec(s):
    assert (await s.commands.run(["true"])).exit_code == 0


def measure(loops, rounds, per_round):
    """Each loop `per_round` times per round, the loops taking turns: {name: ([ms], cpu s)}."""
    samples = {k: [] for k in loops}
    cpu = {k: 0.0 for k in loops}
    for fn in loops.values():
        for _ in range(10):
            fn()
    for _ in range(rounds):
        for name, fn in loops.items():
            c0 = time.process_time()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - t0) * 1000)
            cpu[name] += time.process_time() - c0
    return samples, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=300, help="loops per client (after 10 of warm-up)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--hutch", default=None)
    ap.add_argument("--url")
    ap.add_argument("--token")
    args = ap.parse_args()
    server = None
    if args.url:
        url, token = args.url, args.token
    else:
        server = HutchServer(args.hutch).start()
        url, token = server.url, server.token
    try:
        raw = Raw(url, token)
        sync_client = hutch.Client(url, token)
        aloop = asyncio.new_event_loop()
        async_client = hutch.AsyncClient(url, token)
        py = {
            "raw HTTP (Python http.client)": raw.loop,
            "Python SDK, sync Session": lambda: sdk_loop(sync_client),
            "Python SDK, AsyncSession": lambda: aloop.run_until_complete(async_loop(async_client)),
        }
        per_round = max(1, args.n // args.rounds)
        samples, cpu = measure(py, args.rounds, per_round)
        # The hot path alone: exec `true` on one running session per client.
        sid = raw.call("POST", "/v1/sessions", {})["id"]
        ss = hutch.Session.create(client=sync_client)
        sa = aloop.run_until_complete(hutch.AsyncSession.create(client=async_client))
        ex_samples, ex_cpu = measure({
            "raw HTTP (Python http.client)": lambda: raw.exec(sid),
            "Python SDK, sync Session": lambda: ss.commands.run(["true"]),
            "Python SDK, AsyncSession": lambda: aloop.run_until_complete(async_exec(sa)),
        }, args.rounds, per_round)
        raw.call("DELETE", f"/v1/sessions/{sid}")
        ss.delete()
        aloop.run_until_complete(sa.delete())
        node = subprocess.run(
            [os.path.join(ROOT, "scripts", "node"), os.path.join(ROOT, "bench", "sdk_bench.mjs"),
             url, token, str(per_round * args.rounds), str(args.rounds)],
            check=True, capture_output=True, text=True)
        out = json.loads(node.stdout)
        samples.update(out["loop"]["samples"])
        cpu.update(out["loop"]["cpu"])
        ex_samples.update(out["exec"]["samples"])
        ex_cpu.update(out["exec"]["cpu"])
        sync_client.close()
        aloop.run_until_complete(async_client.close())
    finally:
        if server:
            server.stop()
    raw_of = {"Python": "raw HTTP (Python http.client)", "TypeScript": "raw HTTP (Node fetch)"}
    print(f"{per_round * args.rounds} loops per client after 10 of warm-up, ms; load average at "
          f"the end {os.getloadavg()[0]:.1f}")
    for title, smp, cp in (("create → exec `true` → delete", samples, cpu),
                           ("exec `true` on a running session", ex_samples, ex_cpu)):
        print(f"\n{title}\n")
        print("| client | p50 | p99 | p50 / raw | p99 / raw | client CPU per loop |")
        print("|---|---|---|---|---|---|")
        for name, s in smp.items():
            lang = "TypeScript" if ("Node" in name or "TypeScript" in name) else "Python"
            base = smp[raw_of[lang]]
            print(f"| {name} | {pct(s, 50):.2f} | {pct(s, 99):.2f} | "
                  f"{pct(s, 50) / pct(base, 50):.2f} | {pct(s, 99) / pct(base, 99):.2f} | "
                  f"{cp[name] / len(s) * 1000:.2f} |")


if __name__ == "__main__":
    main()
