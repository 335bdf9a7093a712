"""HTTP plumbing shared by the sync and the async client.

Every API call is written once, as a generator (an "operation") that yields `Req`/`Stream`
objects and receives their answers; `SyncTransport.run` drives it with httpx.Client and
`AsyncTransport.run` with httpx.AsyncClient. So the two clients share every request, every
parse and every error, and neither wraps the other in threads."""

from __future__ import annotations

import asyncio
import inspect
import json as jsonlib
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generator, Iterable, List, Optional, Tuple

import httpx

from . import errors

DEFAULT_URL = "http://127.0.0.1:7070"
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 2
# Statuses after which an idempotent call is tried again: rate limited, or a proxy in front of
# the server that could not reach it. A 503 from hutch itself means a session's sandbox does
# not answer, which a retry a few ms later does not change.
_RETRY_STATUSES = {429, 502, 504}
_IDEMPOTENT_METHODS = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}


class Record(dict):
    """An API object: a dict whose keys also read as attributes (`s.info.state`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @staticmethod
    def wrap(value: Any) -> Any:
        if isinstance(value, dict):
            return Record({k: Record.wrap(v) for k, v in value.items()})
        if isinstance(value, list):
            return [Record.wrap(v) for v in value]
        return value


@dataclass
class Req:
    """One HTTP request of an operation. The answer sent back into the operation is the decoded
    JSON (a Record), or the body's bytes with `raw=True`."""

    method: str
    path: str
    params: Optional[Dict[str, Any]] = None
    json: Any = None
    content: Any = None
    headers: Optional[Dict[str, str]] = None
    raw: bool = False
    # None: GET/HEAD/PUT/DELETE are idempotent, POST/PATCH are not; lifecycle POSTs the API
    # documents as idempotent (pause, resume, …) say True.
    idempotent: Optional[bool] = None
    # Seconds to wait for the answer; None: the client's timeout; 0: no limit.
    timeout: Optional[float] = None

    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method in _IDEMPOTENT_METHODS


@dataclass
class Stream:
    """A Server-Sent Events request: every event goes to `on_event(event, data)` (data is the
    decoded JSON of its `data:` line) until the stream ends or `on_event` returns True (an
    awaitable it returns, from an async callback, is awaited). The operation then receives None.
    Never retried: events already handed out cannot be unsaid."""

    req: Req
    on_event: Callable[[str, Any], Any]


@dataclass
class Config:
    url: str
    token: str
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    headers: Dict[str, str] = field(default_factory=dict)

    @staticmethod
    def resolve(url: Optional[str], token: Optional[str], timeout: Optional[float],
                retries: Optional[int]) -> "Config":
        url = url or os.environ.get("HUTCH_URL") or DEFAULT_URL
        token = token or os.environ.get("HUTCH_TOKEN")
        if not token:
            raise errors.UnauthenticatedError(
                "no token: pass token= or set HUTCH_TOKEN (the admin's is in DATA_DIR/admin.token)")
        return Config(url=url.rstrip("/"), token=token,
                      timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                      retries=DEFAULT_RETRIES if retries is None else retries)

    def http_timeout(self, req_timeout: Optional[float]) -> Optional[httpx.Timeout]:
        t = self.timeout if req_timeout is None else req_timeout
        if not t:
            return httpx.Timeout(None, connect=min(self.timeout or 10.0, 10.0))
        return httpx.Timeout(t)

    def ws_url(self, path: str) -> str:
        if self.url.startswith("https://"):
            return "wss://" + self.url[len("https://"):] + path
        return "ws://" + self.url[len("http://"):] + path if self.url.startswith("http://") \
            else self.url + path


def _params(params: Optional[Dict[str, Any]]) -> Optional[List[Tuple[str, str]]]:
    if not params:
        return None
    out = []
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        if isinstance(v, (list, tuple)):
            out.extend((k, str(x)) for x in v)
        else:
            out.append((k, str(v)))
    return out


def _sync_body(content: Any) -> Any:
    """A binary file object streams in 64 KiB chunks; bytes go as they are."""
    if hasattr(content, "read"):
        return iter(lambda: content.read(1 << 16), b"")
    return content


def _async_body(content: Any) -> Any:
    if hasattr(content, "read"):
        async def chunks():
            while True:
                chunk = content.read(1 << 16)
                if not chunk:
                    return
                yield chunk

        return chunks()
    return content


def _check(resp: httpx.Response, body: bytes) -> None:
    if resp.status_code >= 400:
        raise errors.error_from_answer(resp.status_code, body, resp.headers.get("retry-after"))


def _decode(req: Req, body: bytes) -> Any:
    if req.raw:
        return body
    if not body:
        return None
    return Record.wrap(jsonlib.loads(body))


def _backoff(attempt: int, err: Optional[errors.HutchError]) -> float:
    if err is not None and err.retry_after:
        return min(err.retry_after, 30.0)
    return min(0.05 * (2 ** attempt), 2.0) * (0.5 + random.random() / 2)


def _transport_error(e: Exception) -> errors.HutchError:
    if isinstance(e, httpx.TimeoutException):
        return errors.TimeoutError(f"no answer in time: {e!r}")
    return errors.ConnectionError(f"connection to hutch failed: {e!r}")


class SSEDecoder:
    """The `text/event-stream` framing (lines → events). httpx gives lines (with their line
    ending before 0.24, without after: callers strip it); the framing of events is this
    protocol's own, a dozen lines."""

    def __init__(self) -> None:
        self.event, self.data = "message", []

    def line(self, line: str) -> Optional[Tuple[str, Any]]:
        if line == "":
            if not self.data:
                self.event = "message"
                return None
            raw = "\n".join(self.data)
            ev, self.event, self.data = self.event, "message", []
            try:
                return ev, Record.wrap(jsonlib.loads(raw))
            except ValueError:
                return ev, raw
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None


def _sse_headers(req: Req) -> Dict[str, str]:
    h = dict(req.headers or {})
    h["Accept"] = "text/event-stream"
    return h


def _nodelay_transport() -> httpx.HTTPTransport:
    """httpx's transport with TCP_NODELAY on its connections.

    h11 writes a request's head and body in two sends; with Nagle on, the body waits for the
    server's (delayed, 40 ms) ACK of the head: every POST with a body took ~50 ms instead of
    ~2 ms (measured: exec `true` p50 52 ms → 1.7 ms). anyio, under the async client, sets
    TCP_NODELAY itself; the sync path of httpcore before 1.0 does not, and httpx only takes
    `socket_options` from 0.24 on. For the older one (Debian 12's 0.23) the pool is rebuilt
    with the same settings on a network backend that sets it; if that httpcore's internals are
    not as expected, the default transport is used."""
    opt = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return httpx.HTTPTransport(socket_options=[opt])  # httpx >= 0.24
    except TypeError:
        pass
    transport = httpx.HTTPTransport()
    try:
        import httpcore
        from httpcore.backends.sync import SyncBackend

        class NoDelayBackend(SyncBackend):
            def connect_tcp(self, *args: Any, **kwargs: Any):
                stream = super().connect_tcp(*args, **kwargs)
                stream.get_extra_info("socket").setsockopt(*opt)
                return stream

        old = transport._pool
        transport._pool = httpcore.ConnectionPool(
            ssl_context=old._ssl_context, max_connections=old._max_connections,
            max_keepalive_connections=old._max_keepalive_connections,
            keepalive_expiry=old._keepalive_expiry, http1=old._http1, http2=old._http2,
            network_backend=NoDelayBackend())
    except (ImportError, AttributeError, TypeError):
        pass
    return transport


class SyncTransport:
    def __init__(self, config: Config, client: Optional[httpx.Client] = None):
        self.config = config
        self.http = client or httpx.Client(
            base_url=config.url, timeout=config.http_timeout(None),
            headers={"Authorization": f"Bearer {config.token}", **config.headers},
            transport=_nodelay_transport())
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_lock = threading.Lock()

    def close(self) -> None:
        self.http.close()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def run(self, op: Generator) -> Any:
        try:
            item = next(op)
            while True:
                try:
                    answer = self._stream(item) if isinstance(item, Stream) else self._request(item)
                except errors.HutchError as e:
                    item = op.throw(e)
                    continue
                item = op.send(answer)
        except StopIteration as stop:
            return stop.value

    def _request(self, req: Req) -> Any:
        attempts = 1 + (self.config.retries if req.is_idempotent() else 0)
        for attempt in range(attempts):
            err: Optional[errors.HutchError] = None
            try:
                resp = self.http.request(
                    req.method, req.path, params=_params(req.params), json=req.json,
                    content=_sync_body(req.content), headers=req.headers,
                    timeout=self.config.http_timeout(req.timeout))
                body = resp.content
                if resp.status_code not in _RETRY_STATUSES:
                    _check(resp, body)
                    return _decode(req, body)
                err = errors.error_from_answer(resp.status_code, body,
                                               resp.headers.get("retry-after"))
            except httpx.TransportError as e:
                err = _transport_error(e)
            if attempt + 1 == attempts:
                raise err
            time.sleep(_backoff(attempt, err))
        raise AssertionError("unreachable")

    def _stream(self, s: Stream) -> None:
        req = s.req
        try:
            with self.http.stream(req.method, req.path, params=_params(req.params),
                                  json=req.json, headers=_sse_headers(req),
                                  timeout=self.config.http_timeout(req.timeout)) as resp:
                if resp.status_code >= 400:
                    _check(resp, resp.read())
                dec = SSEDecoder()
                for line in resp.iter_lines():
                    ev = dec.line(line.rstrip("\r\n"))
                    if ev is not None and s.on_event(*ev):
                        return None
        except httpx.TransportError as e:
            raise _transport_error(e) from e
        return None

    def loop(self) -> asyncio.AbstractEventLoop:
        """An event loop on a daemon thread for the WebSocket calls (the PTY), which
        websockets offers only as asyncio in the Debian version (10.x has no sync client)."""
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="hutch-ws", daemon=True).start()
                self._loop = loop
            return self._loop

    def call_async(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop()).result()


class AsyncTransport:
    def __init__(self, config: Config, client: Optional[httpx.AsyncClient] = None):
        self.config = config
        self.http = client or httpx.AsyncClient(
            base_url=config.url, timeout=config.http_timeout(None),
            headers={"Authorization": f"Bearer {config.token}", **config.headers})

    async def close(self) -> None:
        await self.http.aclose()

    async def run(self, op: Generator) -> Any:
        try:
            item = next(op)
            while True:
                try:
                    if isinstance(item, Stream):
                        answer = await self._stream(item)
                    else:
                        answer = await self._request(item)
                except errors.HutchError as e:
                    item = op.throw(e)
                    continue
                item = op.send(answer)
        except StopIteration as stop:
            return stop.value

    async def _request(self, req: Req) -> Any:
        attempts = 1 + (self.config.retries if req.is_idempotent() else 0)
        for attempt in range(attempts):
            err: Optional[errors.HutchError] = None
            try:
                resp = await self.http.request(
                    req.method, req.path, params=_params(req.params), json=req.json,
                    content=_async_body(req.content), headers=req.headers,
                    timeout=self.config.http_timeout(req.timeout))
                body = resp.content
                if resp.status_code not in _RETRY_STATUSES:
                    _check(resp, body)
                    return _decode(req, body)
                err = errors.error_from_answer(resp.status_code, body,
                                               resp.headers.get("retry-after"))
            except httpx.TransportError as e:
                err = _transport_error(e)
            if attempt + 1 == attempts:
                raise err
            await asyncio.sleep(_backoff(attempt, err))
        raise AssertionError("unreachable")

    async def _stream(self, s: Stream) -> None:
        req = s.req
        try:
            async with self.http.stream(req.method, req.path, params=_params(req.params),
                                        json=req.json, headers=_sse_headers(req),
                                        timeout=self.config.http_timeout(req.timeout)) as resp:
                if resp.status_code >= 400:
                    _check(resp, await resp.aread())
                dec = SSEDecoder()
                async for line in resp.aiter_lines():
                    ev = dec.line(line.rstrip("\r\n"))
                    if ev is None:
                        continue
                    stop = s.on_event(*ev)
                    if inspect.isawaitable(stop):  # an async callback: awaited, never stops
                        await stop
                    elif stop:
                        return None
        except httpx.TransportError as e:
            raise _transport_error(e) from e
        return None


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def ws_connect(config: Config, path: str, open_timeout: Optional[float]):
    """websockets' client connect with the bearer token, for the installed websockets version
    (the header argument was renamed in its new asyncio implementation)."""
    headers = [("Authorization", f"Bearer {config.token}")]
    url = config.ws_url(path)
    try:
        from websockets.asyncio.client import connect  # websockets >= 13

        return connect(url, additional_headers=headers, max_size=None, compression=None,
                       open_timeout=open_timeout)
    except ImportError:
        import websockets

        return websockets.connect(url, extra_headers=headers, max_size=None, compression=None,
                                  open_timeout=open_timeout)


def iter_chunks(data: Any) -> Iterable[bytes]:
    if isinstance(data, str):
        return [data.encode()]
    return data
