"""The asynchronous client: `AsyncSession`, `AsyncClient` — every call of the sync client, as
a coroutine."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple, Union

import httpx

from . import _api
from ._pty import AsyncPtyHandle, tty_spec
from ._transport import (AsyncTransport, Config, Record, SSEDecoder, _check, _params,
                         _transport_error)


class AsyncEventStream:
    """A Server-Sent Events stream read with `async for`. Made by `await …watch()` /
    `await client.events.stream()`; `await close()` or `async with` it."""

    def __init__(self, transport: AsyncTransport, path: str, params: Dict[str, Any],
                 ready: Optional[str], timeout: Optional[float], headers=None):
        self._t = transport
        self._args = (path, params, headers)
        self._ready = ready
        self._timeout = timeout
        self._cm = None
        self.last_id: Optional[str] = None

    async def _open(self) -> "AsyncEventStream":
        path, params, headers = self._args
        self._cm = self._t.http.stream(
            "GET", path, params=_params(params),
            headers={"Accept": "text/event-stream", **(headers or {})},
            timeout=httpx.Timeout(self._timeout, connect=self._t.config.timeout or None))
        try:
            resp = await self._cm.__aenter__()
        except httpx.TransportError as e:
            raise _transport_error(e) from e
        if resp.status_code >= 400:
            body = await resp.aread()
            await self._cm.__aexit__(None, None, None)
            _check(resp, body)
        self._lines = resp.aiter_lines()
        self._dec = SSEDecoder()
        if self._ready is not None:
            async for event, _ in self._events():
                if event == self._ready:
                    break
        return self

    def __await__(self):
        return self._open().__await__()

    async def _events(self) -> AsyncIterator[Tuple[str, Any]]:
        try:
            async for line in self._lines:
                line = line.rstrip("\r\n")
                if line.startswith("id:"):
                    self.last_id = line[3:].strip()
                ev = self._dec.line(line)
                if ev is not None:
                    yield ev
        except httpx.TransportError as e:
            raise _transport_error(e) from e

    async def __aiter__(self) -> AsyncIterator[Record]:
        async for _, data in self._events():
            yield data

    async def close(self) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(None, None, None)
            self._cm = None

    async def __aenter__(self) -> "AsyncEventStream":
        if self._cm is None:
            await self._open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncPty:
    def __init__(self, session: "AsyncSession"):
        self._s = session

    async def create(self, *, rows: int = 24, cols: int = 80,
                     on_data: Optional[Callable[[bytes], Any]] = None,
                     cmd: Union[str, Sequence[str], None] = None,
                     env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
                     timeout: Optional[float] = None) -> AsyncPtyHandle:
        """Opens a terminal running `cmd` (default an interactive bash) of `rows`×`cols`."""
        cfg = self._s._client._config
        return await AsyncPtyHandle.open(cfg, self._s._path,
                                         tty_spec(cmd, rows, cols, env, cwd, timeout), on_data,
                                         cfg.timeout or 30.0)


class AsyncFiles(_api.Files):
    def watch(self, path: str, *, recursive: bool = False,
              timeout: Optional[float] = None) -> AsyncEventStream:
        """`w = await s.files.watch(path)` answers once the watch is in place; then
        `async for ev in w` ({type, path, from?, directory})."""
        return AsyncEventStream(self._s._client._t, f"{self._s._path}/files/watch",
                                {"path": path, "recursive": recursive}, "ready", timeout)


class AsyncSession(_api.SessionBase):
    """A session, asynchronously: every method is awaited. `async with await
    AsyncSession.create() as s:` deletes it at the end."""

    def __init__(self, client: "AsyncClient", info: Record):
        super().__init__(client, info)
        self.files = AsyncFiles(self)
        self.pty = AsyncPty(self)

    @classmethod
    async def create(cls, template: Optional[str] = None, *, url: Optional[str] = None,
                     token: Optional[str] = None, timeout: Optional[float] = None,
                     retries: Optional[int] = None, client: Optional["AsyncClient"] = None,
                     **fields: Any) -> "AsyncSession":
        """As `Session.create`."""
        c = client or AsyncClient.shared(url, token, timeout, retries)
        return await c._run(_api.create_op(cls, c, {"template": template, **fields}))

    @classmethod
    async def connect(cls, session_id: str, *, url: Optional[str] = None,
                      token: Optional[str] = None, timeout: Optional[float] = None,
                      retries: Optional[int] = None,
                      client: Optional["AsyncClient"] = None) -> "AsyncSession":
        c = client or AsyncClient.shared(url, token, timeout, retries)
        return await c._run(_api.connect_op(cls, c, session_id))

    @classmethod
    async def list(cls, *, state: Optional[str] = None, labels: Optional[Dict[str, str]] = None,
                   q: Optional[str] = None, include_deleted: Optional[bool] = None,
                   url: Optional[str] = None, token: Optional[str] = None,
                   client: Optional["AsyncClient"] = None) -> List[Record]:
        c = client or AsyncClient.shared(url, token, None, None)
        return await c._run(_api.list_op({"state": state, "label": _api.label_params(labels),
                                          "q": q, "include_deleted": include_deleted}))

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.delete()


class AsyncEvents(_api.EventsBase):
    def stream(self, *, session: Optional[str] = None,
               type: Union[str, Sequence[str], None] = None, since: Optional[str] = None,
               after: Optional[int] = None, last_event_id: Optional[str] = None,
               timeout: Optional[float] = None) -> AsyncEventStream:
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else None
        return AsyncEventStream(self._c._t, "/v1/events",
                                _api.event_params(session, type, since, after), None, timeout,
                                headers)


_shared: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dict[Tuple, AsyncClient]]" = \
    weakref.WeakKeyDictionary()


class AsyncClient:
    """As `Client`, for asyncio."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 timeout: Optional[float] = None, retries: Optional[int] = None):
        self._config = Config.resolve(url, token, timeout, retries)
        self._t = AsyncTransport(self._config)
        self.templates = _api.Templates(self)
        self.volumes = _api.Volumes(self)
        self.events = AsyncEvents(self)
        self.tasks = _api.Tasks(self)

    @classmethod
    def shared(cls, url, token, timeout, retries) -> "AsyncClient":
        """One client per event loop, server, token and options (httpx's async pool belongs
        to the loop it was made on)."""
        cfg = Config.resolve(url, token, timeout, retries)
        per_loop = _shared.setdefault(asyncio.get_running_loop(), {})
        key = (cfg.url, cfg.token, cfg.timeout, cfg.retries)
        c = per_loop.get(key)
        if c is None:
            c = per_loop[key] = cls(cfg.url, cfg.token, timeout=cfg.timeout, retries=cfg.retries)
        return c

    def _run(self, op):
        return self._t.run(op)

    async def create_session(self, template: Optional[str] = None, **fields: Any) -> AsyncSession:
        return await AsyncSession.create(template, client=self, **fields)

    async def get_session(self, session_id: str) -> AsyncSession:
        return await AsyncSession.connect(session_id, client=self)

    async def list_sessions(self, **filters: Any) -> List[Record]:
        return await AsyncSession.list(client=self, **filters)

    async def me(self) -> Record:
        from ._sync import _get

        return await self._run(_get("/v1/me"))

    async def version(self) -> Record:
        from ._sync import _get

        return await self._run(_get("/v1/version"))

    async def close(self) -> None:
        await self._t.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
