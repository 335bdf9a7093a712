"""Terminals over `GET …/exec/ws` (docs/api.md, "Streaming exec over WebSocket"): the first
text message is the exec spec with `tty`, then binary messages whose first byte is the channel
(0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 5 signal)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Union

from . import errors
from ._transport import Config, maybe_await, ws_connect

STDIN, STDOUT, STDERR, STATUS, RESIZE, SIGNAL = range(6)
DEFAULT_SHELL = ["/bin/bash", "-i"]


@dataclass
class PtyResult:
    exit_code: int
    signal: int = 0
    timed_out: bool = False
    duration_ms: int = 0


def tty_spec(cmd: Union[str, Sequence[str], None], rows: int, cols: int,
             env: Optional[Dict[str, str]], cwd: Optional[str],
             timeout: Optional[float]) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"tty": {"rows": int(rows), "cols": int(cols)}}
    if isinstance(cmd, str):
        spec["command"] = cmd
    else:
        spec["cmd"] = list(cmd or DEFAULT_SHELL)
    if env:
        spec["env"] = dict(env)
    if cwd is not None:
        spec["cwd"] = cwd
    if timeout:
        spec["timeout_seconds"] = int(timeout)
    return spec


class AsyncPtyHandle:
    """A terminal in a session. `on_data` gets the terminal's output (bytes) as it comes."""

    def __init__(self, ws: Any, on_data: Optional[Callable[[bytes], Any]]):
        self._ws = ws
        self._on_data = on_data
        self._result: "asyncio.Future[PtyResult]" = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, config: Config, session_path: str, spec: Dict[str, Any],
                   on_data: Optional[Callable[[bytes], Any]], open_timeout: float):
        try:
            ws = await ws_connect(config, f"{session_path}/exec/ws", open_timeout)
        except OSError as e:
            raise errors.ConnectionError(f"terminal connection failed: {e!r}") from e
        except Exception as e:  # websockets' InvalidStatusCode: the answer before the upgrade
            status = getattr(e, "status_code", None) or getattr(
                getattr(e, "response", None), "status_code", None)
            if status:
                raise errors.error_from_answer(int(status), b"") from e
            raise
        await ws.send(json.dumps(spec))
        return cls(ws, on_data)

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if isinstance(msg, str) or not msg:
                    continue
                channel, payload = msg[0], bytes(msg[1:])
                if channel in (STDOUT, STDERR) and self._on_data is not None:
                    await maybe_await(self._on_data(payload))
                elif channel == STATUS:
                    status = json.loads(payload)
                    if "error" in status:
                        err = status["error"]
                        self._result.set_exception(errors.error_from_answer(
                            400, json.dumps({"error": err}).encode()))
                    else:
                        self._result.set_result(PtyResult(
                            exit_code=int(status.get("exit_code", -1)),
                            signal=int(status.get("signal") or 0),
                            timed_out=bool(status.get("timed_out")),
                            duration_ms=int(status.get("duration_ms") or 0)))
        except Exception as e:  # the connection broke: wait() says so
            if not self._result.done():
                self._result.set_exception(
                    errors.ConnectionError(f"terminal connection broke: {e!r}"))
        finally:
            if not self._result.done():
                self._result.set_exception(
                    errors.ConnectionError("the terminal closed without a status"))

    async def send_input(self, data: Union[str, bytes]) -> None:
        """Bytes typed at the terminal (`b"\\x03"` is ^C); empty means EOF."""
        await self._ws.send(bytes([STDIN]) + (data.encode() if isinstance(data, str) else data))

    async def resize(self, rows: int, cols: int) -> None:
        await self._ws.send(bytes([RESIZE]) + json.dumps({"rows": rows, "cols": cols}).encode())

    async def signal(self, signal: Union[str, int]) -> None:
        await self._ws.send(bytes([SIGNAL]) + json.dumps({"signal": signal}).encode())

    async def kill(self) -> None:
        """SIGKILL to the terminal's process group; `wait()` then answers how it ended."""
        await self.signal("KILL")

    async def wait(self, timeout: Optional[float] = None) -> PtyResult:
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except asyncio.TimeoutError:
            raise errors.TimeoutError(f"the terminal did not end within {timeout} s") from None

    async def close(self) -> None:
        """Closes the connection (which kills the terminal's processes if they still run)."""
        await self._ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)
