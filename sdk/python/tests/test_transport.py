"""Retries and timeouts as options: against a small local HTTP server that misbehaves on
purpose (the real server does not answer 502, nor drop connections, on demand)."""

import http.server
import json
import threading
import time

import pytest

import hutch


class Flaky(http.server.BaseHTTPRequestHandler):
    plan = []  # statuses to answer, in order; then 200
    hits = []

    def _answer(self):
        Flaky.hits.append((self.command, self.path))
        status = Flaky.plan.pop(0) if Flaky.plan else 200
        if status == 200:
            body = json.dumps({"id": "ses_x", "name": "x", "state": "running"}).encode()
        else:
            body = json.dumps({"error": {"code": "resource_exhausted" if status == 429 else
                                         "unavailable", "message": f"status {status}"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 429:
            self.send_header("Retry-After", "0.01")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Flaky.plan, Flaky.hits = [], []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_idempotent_calls_are_retried(flaky):
    Flaky.plan = [502, 429]
    s = hutch.Session.connect("x", url=flaky, token="t", retries=2)
    assert s.id == "ses_x" and len(Flaky.hits) == 3


def test_retries_are_an_option(flaky):
    Flaky.plan = [502]
    with pytest.raises(hutch.HutchError) as e:
        hutch.Session.connect("x", url=flaky, token="t", retries=0)
    assert e.value.status == 502 and len(Flaky.hits) == 1
    Flaky.plan = [429, 429, 429]
    Flaky.hits = []
    with pytest.raises(hutch.ResourceExhaustedError) as e:
        hutch.Session.connect("x", url=flaky, token="t", retries=2)
    assert e.value.retry_after == 0.01 and len(Flaky.hits) == 3


def test_non_idempotent_calls_are_not_retried(flaky):
    Flaky.plan = [502]
    with pytest.raises(hutch.HutchError):
        hutch.Session.create(url=flaky, token="t", retries=5)
    assert len(Flaky.hits) == 1


def test_connection_errors_and_missing_token(monkeypatch):
    with pytest.raises(hutch.errors.ConnectionError):
        hutch.Session.connect("x", url="http://127.0.0.1:9", token="t", retries=1)
    monkeypatch.delenv("HUTCH_TOKEN", raising=False)
    with pytest.raises(hutch.UnauthenticatedError):
        hutch.Client(url="http://127.0.0.1:9")


def test_timeout_option():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Slow", (Flaky,), {
        "do_GET": lambda self: (time.sleep(2), Flaky._answer(self))}))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(hutch.errors.TimeoutError):
        hutch.Session.connect("x", url=f"http://127.0.0.1:{srv.server_address[1]}", token="t",
                              timeout=0.2, retries=0)
    assert time.monotonic() - start < 1.5
    srv.shutdown()


def test_sync_connections_set_tcp_nodelay(client):
    # Without it every POST with a body waited for the server's delayed ACK (~40 ms): Nagle
    # held the body h11 sends after the head. (Reads httpcore's internals: a check of the
    # workaround in _transport._nodelay_transport, not of an API.)
    import socket

    client.me()
    socks = [conn._connection._network_stream.get_extra_info("socket")
             for conn in client._t.http._transport._pool.connections]
    assert socks and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in socks)
