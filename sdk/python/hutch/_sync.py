"""The synchronous client: `Session`, `Client`."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import httpx

from . import _api
from ._pty import AsyncPtyHandle, PtyResult, tty_spec
from ._transport import Config, Record, SSEDecoder, SyncTransport, _check, _params, _transport_error


class EventStream:
    """A Server-Sent Events stream (events, file watches) read as an iterator of Records.
    `timeout`: the longest wait for the next event (None: forever; the server pings every
    15 s). Close it, or use it in a `with`."""

    def __init__(self, transport: SyncTransport, path: str, params: Dict[str, Any],
                 ready: Optional[str], timeout: Optional[float], headers=None):
        self._cm = transport.http.stream(
            "GET", path, params=_params(params),
            headers={"Accept": "text/event-stream", **(headers or {})},
            timeout=httpx.Timeout(timeout, connect=transport.config.timeout or None))
        try:
            resp = self._cm.__enter__()
        except httpx.TransportError as e:
            raise _transport_error(e) from e
        if resp.status_code >= 400:
            body = resp.read()
            self._cm.__exit__(None, None, None)
            _check(resp, body)
        self._lines = resp.iter_lines()
        self._dec = SSEDecoder()
        self.last_id: Optional[str] = None
        if ready is not None:
            for event, _ in self._events():
                if event == ready:
                    break

    def _events(self) -> Iterator[Tuple[str, Any]]:
        try:
            for line in self._lines:
                line = line.rstrip("\r\n")
                if line.startswith("id:"):
                    self.last_id = line[3:].strip()
                ev = self._dec.line(line)
                if ev is not None:
                    yield ev
        except httpx.TransportError as e:
            raise _transport_error(e) from e

    def __iter__(self) -> Iterator[Record]:
        for _, data in self._events():
            yield data

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class PtyHandle:
    """A terminal (see `Pty.create`). `on_data` runs on the SDK's WebSocket thread."""

    def __init__(self, transport: SyncTransport, handle: AsyncPtyHandle):
        self._t = transport
        self._h = handle

    def send_input(self, data: Union[str, bytes]) -> None:
        self._t.call_async(self._h.send_input(data))

    def resize(self, rows: int, cols: int) -> None:
        self._t.call_async(self._h.resize(rows, cols))

    def signal(self, signal: Union[str, int]) -> None:
        self._t.call_async(self._h.signal(signal))

    def kill(self) -> None:
        self._t.call_async(self._h.kill())

    def wait(self, timeout: Optional[float] = None) -> PtyResult:
        return self._t.call_async(self._h.wait(timeout))

    def close(self) -> None:
        self._t.call_async(self._h.close())

    def __enter__(self) -> "PtyHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Pty:
    def __init__(self, session: "Session"):
        self._s = session

    def create(self, *, rows: int = 24, cols: int = 80,
               on_data: Optional[Callable[[bytes], Any]] = None,
               cmd: Union[str, Sequence[str], None] = None, env: Optional[Dict[str, str]] = None,
               cwd: Optional[str] = None, timeout: Optional[float] = None) -> PtyHandle:
        """Opens a terminal running `cmd` (default an interactive bash) of `rows`×`cols`."""
        t = self._s._client._t
        spec = tty_spec(cmd, rows, cols, env, cwd, timeout)
        h = t.call_async(AsyncPtyHandle.open(t.config, self._s._path, spec, on_data,
                                             t.config.timeout or 30.0))
        return PtyHandle(t, h)


class Files(_api.Files):
    def watch(self, path: str, *, recursive: bool = False,
              timeout: Optional[float] = None) -> EventStream:
        """Watches `path`: answers once the watch is in place; iterate it for the changes
        (`{type: created|modified|deleted|moved|overflow, path, from?, directory}`)."""
        return EventStream(self._s._client._t, f"{self._s._path}/files/watch",
                           {"path": path, "recursive": recursive}, "ready", timeout)


class Session(_api.SessionBase):
    """A session, synchronously. `Session.create()` makes one; `with Session.create() as s:`
    deletes it at the end."""

    def __init__(self, client: "Client", info: Record):
        super().__init__(client, info)
        self.files = Files(self)
        self.pty = Pty(self)

    @classmethod
    def create(cls, template: Optional[str] = None, *, url: Optional[str] = None,
               token: Optional[str] = None, timeout: Optional[float] = None,
               retries: Optional[int] = None, client: Optional["Client"] = None,
               **fields: Any) -> "Session":
        """Creates a session (`POST /v1/sessions`; `fields` are the create body's: name, title, image,
        resources, env, labels, metadata, network, ttl_seconds, idle_timeout_seconds, on_idle,
        start_at, volumes, setup, services, wait, from_checkpoint). `url`/`token` default to
        HUTCH_URL/HUTCH_TOKEN; `timeout` (seconds per call, 0 none) and `retries` (of
        idempotent calls) apply to every call made through this session."""
        c = client or Client.shared(url, token, timeout, retries)
        return c._run(_api.create_op(cls, c, {"template": template, **fields}))

    @classmethod
    def connect(cls, session_id: str, *, url: Optional[str] = None, token: Optional[str] = None,
                timeout: Optional[float] = None, retries: Optional[int] = None,
                client: Optional["Client"] = None) -> "Session":
        """The session with this id or name."""
        c = client or Client.shared(url, token, timeout, retries)
        return c._run(_api.connect_op(cls, c, session_id))

    @classmethod
    def list(cls, *, state: Optional[str] = None, labels: Optional[Dict[str, str]] = None,
             q: Optional[str] = None, include_deleted: Optional[bool] = None,
             url: Optional[str] = None, token: Optional[str] = None,
             client: Optional["Client"] = None) -> List[Record]:
        c = client or Client.shared(url, token, None, None)
        return c._run(_api.list_op({"state": state, "label": _api.label_params(labels), "q": q,
                                    "include_deleted": include_deleted}))

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.delete()


class Events(_api.EventsBase):
    def stream(self, *, session: Optional[str] = None,
               type: Union[str, Sequence[str], None] = None, since: Optional[str] = None,
               after: Optional[int] = None, last_event_id: Optional[str] = None,
               timeout: Optional[float] = None) -> EventStream:
        """Follows the event log (SSE) from after `after`/`last_event_id`, else `since`, else
        the next event; iterate it. `last_id` is where to resume."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else None
        return EventStream(self._c._t, "/v1/events",
                           _api.event_params(session, type, since, after), None, timeout,
                           headers)


class Client:
    """A connection to a hutch server: sessions, templates, volumes, events, tasks.

    `url`/`token` default to HUTCH_URL/HUTCH_TOKEN. `timeout`: seconds a call may take (60; 0:
    no limit; creates, checkpoints and forks wait as long as they take). `retries`: how often
    an idempotent call (GET, PUT, DELETE and the idempotent lifecycle POSTs) is tried again
    after a connection error, a 429 or a 502/504 (2; 0: never)."""

    _shared: Dict[Tuple[str, str, float, int], "Client"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 timeout: Optional[float] = None, retries: Optional[int] = None):
        self._config = Config.resolve(url, token, timeout, retries)
        self._t = SyncTransport(self._config)
        self.templates = _api.Templates(self)
        self.volumes = _api.Volumes(self)
        self.events = Events(self)
        self.tasks = _api.Tasks(self)

    @classmethod
    def shared(cls, url, token, timeout, retries) -> "Client":
        """One client (one connection pool) per server, token and options, for
        `Session.create`/`connect` without `client=`."""
        cfg = Config.resolve(url, token, timeout, retries)
        key = (cfg.url, cfg.token, cfg.timeout, cfg.retries)
        with cls._shared_lock:
            c = cls._shared.get(key)
            if c is None:
                c = cls._shared[key] = cls(cfg.url, cfg.token, timeout=cfg.timeout,
                                           retries=cfg.retries)
            return c

    def _run(self, op):
        return self._t.run(op)

    def create_session(self, template: Optional[str] = None, **fields: Any) -> Session:
        return Session.create(template, client=self, **fields)

    def get_session(self, session_id: str) -> Session:
        return Session.connect(session_id, client=self)

    def list_sessions(self, **filters: Any) -> List[Record]:
        return Session.list(client=self, **filters)

    def me(self) -> Record:
        return self._run(_get("/v1/me"))

    def version(self) -> Record:
        return self._run(_get("/v1/version"))

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _get(path: str):
    from ._transport import Req

    return (yield Req("GET", path))
