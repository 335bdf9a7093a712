"""Starts a real `hutch serve` for a test suite (used by the Python SDK's tests and bench/):
port 0, a temp data dir named hutch-* (so tests/leaks sees anything left), the admin token from
DATA_DIR/admin.token. On stop every session is purged through the API, the server gets SIGTERM,
and any sandbox still alive is killed from its cgroups, as tests/testing/server_process.cc does."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from typing import Optional


def find_hutch() -> str:
    path = os.environ.get("HUTCH_BINARY")
    if path:
        return path
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    return os.path.join(root, "build", "release", "src", "exe", "hutch")


class HutchServer:
    def __init__(self, binary: Optional[str] = None, config: str = ""):
        self.binary = binary or find_hutch()
        # Suites and benchmarks make hundreds of changing calls a second: no rate limit, so a
        # 429 (which the SDK retries only for idempotent calls) never decides a result.
        self.config = "rate_limit:\n  per_second: 0\n" + config
        self.data_dir = tempfile.mkdtemp(prefix="hutch-sdk-")
        self.proc: Optional[subprocess.Popen] = None
        self.url = ""
        self.token = ""

    def start(self, timeout: float = 60.0) -> "HutchServer":
        log = open(os.path.join(self.data_dir, "serve.log"), "ab")
        config = os.path.join(self.data_dir, "config.yaml")
        with open(config, "w") as f:
            f.write(self.config)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir,
             "--config", config],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        addr_file = os.path.join(self.data_dir, "listen.addr")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(addr_file):
                addr = open(addr_file).read().strip()
                if addr:
                    self.url = f"http://{addr}"
                    self.token = open(os.path.join(self.data_dir, "admin.token")).read().strip()
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"hutch serve exited at start:\n{self.log()}")
            time.sleep(0.01)
        raise RuntimeError(f"hutch serve did not write listen.addr in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return open(os.path.join(self.data_dir, "serve.log"), errors="replace").read()[-4000:]
        except OSError:
            return ""

    def _api(self, method: str, path: str):
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    def purge_sessions(self) -> None:
        sessions = self._api("GET", "/v1/sessions?include_deleted=true&limit=1000")["sessions"]
        for s in sessions:
            try:
                self._api("DELETE", f"/v1/sessions/{s['id']}?purge=true")
            except Exception:
                pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.purge_sessions()
            except Exception:
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._kill_sandboxes()
        if not os.environ.get("HUTCH_KEEP_TEST_DIRS"):
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _kill_sandboxes(self) -> None:
        # Sandboxes outlive their server by design; whatever a failed test left goes here.
        ids = [os.path.basename(p) for p in glob.glob(os.path.join(self.data_dir, "sessions",
                                                                   "ses_*"))]
        for sid in ids:
            dirs = [d for d in glob.glob(f"/sys/fs/cgroup/*/hutch/{sid}") +
                    glob.glob(f"/sys/fs/cgroup/hutch/{sid}") if os.path.isdir(d)]
            for d in dirs:
                for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                    try:
                        with open(os.path.join(d, name), "w") as f:
                            f.write(value)
                    except OSError:
                        pass
            for _ in range(200):
                pids = []
                for d in dirs:
                    try:
                        with open(os.path.join(d, "cgroup.procs")) as f:
                            pids += [int(p) for p in f.read().split()]
                    except OSError:
                        pass
                if not pids:
                    break
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.01)
            for d in dirs:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
