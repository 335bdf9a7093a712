"""The API's calls, written once for both clients.

Each method builds an operation (a generator of `Req`/`Stream`, see _transport.py) and hands it
to `_run`, which is `SyncTransport.run` (answers the value) for `Session`/`Client` and
`AsyncTransport.run` (answers a coroutine) for `AsyncSession`/`AsyncClient`. So every method
here is `x = s.files.read(p)` in the sync client and `x = await s.files.read(p)` in the async
one."""

from __future__ import annotations

import io
import json as jsonlib
import os
import posixpath
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import errors
from ._transport import Record, Req, Stream

OutputCallback = Callable[[str], Any]
Command = Union[str, Sequence[str]]


def _q(s: str) -> str:
    from urllib.parse import quote

    return quote(str(s), safe="")


@dataclass
class CommandResult:
    """How a command ended: exec's answer (`truncated`), or a background command's end
    (`dropped_bytes`: output that left its ring buffer before this reader got it)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    signal: int = 0
    timed_out: bool = False
    truncated: bool = False
    duration_ms: int = 0
    dropped_bytes: int = 0

    @staticmethod
    def from_answer(a: Dict[str, Any], stdout: Optional[str] = None,
                    stderr: Optional[str] = None) -> "CommandResult":
        return CommandResult(
            exit_code=int(a.get("exit_code") if a.get("exit_code") is not None else -1),
            stdout=a.get("stdout", "") if stdout is None else stdout,
            stderr=a.get("stderr", "") if stderr is None else stderr,
            signal=int(a.get("signal") or 0), timed_out=bool(a.get("timed_out")),
            truncated=bool(a.get("truncated")), duration_ms=int(a.get("duration_ms") or 0),
            dropped_bytes=int(a.get("dropped_bytes") or 0))


def _exec_spec(cmd: Command, env, cwd, stdin, timeout) -> Dict[str, Any]:
    spec: Dict[str, Any] = {}
    if isinstance(cmd, str):
        spec["command"] = cmd
    else:
        spec["cmd"] = list(cmd)
    if env:
        spec["env"] = dict(env)
    if cwd is not None:
        spec["cwd"] = cwd
    if stdin is not None:
        spec["stdin"] = stdin if isinstance(stdin, str) else stdin.decode()
    if timeout is not None:
        spec["timeout_seconds"] = int(timeout)
    return spec


def _http_wait(timeout: Optional[float]) -> float:
    # The HTTP answer of a command with a timeout comes at most ~2 s (SIGTERM→SIGKILL) after
    # it; without one (0) the call waits as long as the command runs.
    return 0 if not timeout else float(timeout) + 15.0


def _output_handler(out: List[str], err: List[str], end: Dict[str, Any],
                    on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback]):
    def handle(event: str, data: Any):
        if event == "stdout":
            out.append(data["data"])
            return on_stdout(data["data"]) if on_stdout else None
        if event == "stderr":
            err.append(data["data"])
            return on_stderr(data["data"]) if on_stderr else None
        if event == "exit":
            end.update(data)
            return True
        return None

    return handle


class CommandHandle:
    """A background command (`commands.run(..., background=True)`, or `commands.connect(tag)`
    to reattach later, from any process). `pid` and `tag` name it."""

    def __init__(self, session: "SessionBase", info: Record):
        self._s = session
        self.info = info
        self.pid: int = info["pid"]
        self.tag: Optional[str] = info.get("tag")

    @property
    def _ref(self) -> str:
        return _q(self.tag if self.tag else self.pid)

    def _path(self, suffix: str = "") -> str:
        return f"{self._s._path}/processes/{self._ref}{suffix}"

    def wait(self, on_stdout: Optional[OutputCallback] = None,
             on_stderr: Optional[OutputCallback] = None, timeout: Optional[float] = None):
        """Replays the output the process wrote (its ring buffer) to the callbacks, follows it
        until the process ends, and answers its CommandResult."""

        def op():
            out: List[str] = []
            err: List[str] = []
            end: Dict[str, Any] = {}
            yield Stream(Req("GET", self._path("/output"), params={"follow": True},
                             timeout=timeout or 0),
                         _output_handler(out, err, end, on_stdout, on_stderr))
            if not end:
                raise errors.ConnectionError("the output stream ended before the process did")
            return CommandResult.from_answer(end, "".join(out), "".join(err))

        return self._s._run(op())

    def refresh(self):
        """The process as the server has it now (`state`, `exit_code`, …)."""

        def op():
            self.info = yield Req("GET", self._path())
            return self.info

        return self._s._run(op())

    def output(self):
        """What the process wrote so far (stdout and stderr as written), without waiting."""

        def op():
            data = yield Req("GET", self._path("/output"), raw=True)
            return data.decode("utf-8", "replace")

        return self._s._run(op())

    def send_stdin(self, data: Union[str, bytes], close: bool = False):
        def op():
            text = data if isinstance(data, str) else data.decode()
            return (yield Req("POST", self._path("/stdin"), json={"data": text, "close": close}))

        return self._s._run(op())

    def kill(self, signal: Union[str, int] = "KILL"):
        """Sends `signal` (default KILL) to the process's group."""

        def op():
            return (yield Req("POST", self._path("/signal"), json={"signal": signal}))

        return self._s._run(op())


class Commands:
    def __init__(self, session: "SessionBase"):
        self._s = session

    def run(self, cmd: Command, *, on_stdout: Optional[OutputCallback] = None,
            on_stderr: Optional[OutputCallback] = None, background: bool = False,
            timeout: Optional[float] = 60, env: Optional[Dict[str, str]] = None,
            cwd: Optional[str] = None, stdin: Optional[Union[str, bytes]] = None,
            tag: Optional[str] = None, check: bool = False):
        """Runs `cmd` (a string for `sh -c`, or an argv list) in the session.

        Without callbacks: one `POST …/exec`, the CommandResult when it exited. With
        `on_stdout`/`on_stderr`: the output streams to them as the command writes it (SSE).
        `background=True`: starts it (`POST …/processes`, with `tag` to reattach by) and answers
        a CommandHandle at once. `timeout` seconds (0: none) ends the command's process group;
        `check=True` raises CommandExitError unless it exited 0."""
        spec = _exec_spec(cmd, env, cwd, stdin, timeout)
        path = self._s._path
        if background:
            if tag is not None:
                spec["tag"] = tag

            def start():
                info = yield Req("POST", f"{path}/processes", json=spec)
                return CommandHandle(self._s, info)

            return self._s._run(start())
        if tag is not None:
            raise errors.InvalidArgumentError("tag is for background commands")

        def op():
            if on_stdout is None and on_stderr is None:
                answer = yield Req("POST", f"{path}/exec", json=spec, timeout=_http_wait(timeout))
                result = CommandResult.from_answer(answer)
            else:
                out: List[str] = []
                err: List[str] = []
                end: Dict[str, Any] = {}
                yield Stream(Req("POST", f"{path}/exec", params={"stream": True}, json=spec,
                                 timeout=_http_wait(timeout)),
                             _output_handler(out, err, end, on_stdout, on_stderr))
                if not end:
                    raise errors.ConnectionError("the output stream ended before the command did")
                result = CommandResult.from_answer(end, "".join(out), "".join(err))
            if check and (result.exit_code != 0 or result.signal):
                raise errors.CommandExitError(result)
            return result

        return self._s._run(op())

    def connect(self, tag_or_pid: Union[str, int]):
        """Reattaches to a background command by its tag or pid: a CommandHandle."""

        def op():
            info = yield Req("GET", f"{self._s._path}/processes/{_q(tag_or_pid)}")
            return CommandHandle(self._s, info)

        return self._s._run(op())

    def list(self):
        """Background commands, running and ended, in start order."""

        def op():
            answer = yield Req("GET", f"{self._s._path}/processes")
            return answer["processes"]

        return self._s._run(op())

    def run_code(self, code: str, language: str = "python", timeout: Optional[float] = 60):
        """Runs a snippet with the image's interpreter (`python`, `bash`, `sh`, `node`)."""

        def op():
            body: Dict[str, Any] = {"language": language, "code": code}
            if timeout is not None:
                body["timeout_seconds"] = int(timeout)
            answer = yield Req("POST", f"{self._s._path}/run", json=body,
                               timeout=_http_wait(timeout))
            return CommandResult.from_answer(answer)

        return self._s._run(op())

    def interrupt(self):
        """SIGINT to what runs in the session's foreground (exec, run, terminals): the count."""

        def op():
            answer = yield Req("POST", f"{self._s._path}/interrupt")
            return answer["interrupted"]

        return self._s._run(op())


def _safe_members(tf: tarfile.TarFile, strip: Optional[str]):
    """The archive's members below its top directory `strip`, renamed without it; refuses
    names that climb out (`..`, absolute) and links that point out, and drops devices — what
    tarfile's `data` filter does, for Pythons (Debian 12's 3.11.2) that lack it."""
    for m in tf.getmembers():
        name = m.name
        if strip is not None:
            if name == strip or name == strip + "/":
                continue
            if not name.startswith(strip + "/"):
                continue
            name = name[len(strip) + 1:]
        norm = posixpath.normpath(name)
        if name.startswith("/") or norm == ".." or norm.startswith("../"):
            raise errors.InvalidArgumentError(f"archive entry {m.name!r} leaves its directory")
        if m.issym() or m.islnk():
            target = m.linkname
            base = posixpath.dirname(norm) if m.issym() else ""
            if m.islnk() and strip is not None and target.startswith(strip + "/"):
                m.linkname = target = target[len(strip) + 1:]
            t = posixpath.normpath(posixpath.join(base, target))
            if target.startswith("/") or t == ".." or t.startswith("../"):
                raise errors.InvalidArgumentError(f"archive link {m.name!r} points outside")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            continue
        m.mode &= 0o777
        m.name = norm
        yield m


class Files:
    def __init__(self, session: "SessionBase"):
        self._s = session

    def _p(self, suffix: str = "") -> str:
        return f"{self._s._path}/files{suffix}"

    def read(self, path: str, format: str = "text"):
        """A file's content: `str` (format="text", UTF-8) or `bytes` (format="bytes")."""

        def op():
            data = yield Req("GET", self._p(), params={"path": path}, raw=True)
            return data if format == "bytes" else data.decode("utf-8")

        return self._s._run(op())

    def write(self, path: str, data: Union[str, bytes, io.IOBase], *, mode: Optional[int] = None,
              parents: bool = True):
        """Writes `data` (str, bytes or a binary file object, streamed) to `path`, atomically;
        missing directories are made unless `parents=False`. Answers the entry."""
        content = data.encode() if isinstance(data, str) else data
        params: Dict[str, Any] = {"path": path, "parents": parents}
        if mode is not None:
            params["mode"] = format(mode, "04o")

        def op():
            return (yield Req("PUT", self._p(), params=params, content=content,
                              idempotent=not isinstance(content, io.IOBase)))

        return self._s._run(op())

    def list(self, path: str = "/", depth: int = 1):
        """A directory's entries, `depth` levels down."""

        def op():
            answer = yield Req("GET", self._p(), params={"path": path, "depth": depth})
            if not isinstance(answer, dict) or "entries" not in answer:
                raise errors.ConflictError(f"{path} is not a directory", status=409)
            return answer["entries"]

        return self._s._run(op())

    def stat(self, path: str):
        def op():
            return (yield Req("GET", self._p("/stat"), params={"path": path}))

        return self._s._run(op())

    def exists(self, path: str):
        def op():
            try:
                yield Req("GET", self._p("/stat"), params={"path": path})
                return True
            except errors.NotFoundError:
                return False

        return self._s._run(op())

    def remove(self, path: str, recursive: bool = False):
        def op():
            return (yield Req("DELETE", self._p(), params={"path": path, "recursive": recursive}))

        return self._s._run(op())

    def make_dir(self, path: str, parents: bool = True):
        def op():
            return (yield Req("POST", self._p("/mkdir"), json={"path": path, "parents": parents}))

        return self._s._run(op())

    def move(self, src: str, dst: str, overwrite: bool = False):
        def op():
            return (yield Req("POST", self._p("/move"),
                              json={"from": src, "to": dst, "overwrite": overwrite}))

        return self._s._run(op())

    rename = move

    def upload_dir(self, local_dir: str, remote_dir: str):
        """Uploads a local directory's contents into `remote_dir` (made if missing) as one tar
        (`PUT …/archive`). Answers `{path, entries, files, bytes}`."""
        buf = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for entry in sorted(os.listdir(local_dir)):
                tf.add(os.path.join(local_dir, entry), arcname=entry)
        size = buf.tell()
        buf.seek(0)
        # Small archives go as bytes (and may be retried); larger ones stream from the spool.
        content = buf.read() if size <= (8 << 20) else buf

        def op():
            try:
                return (yield Req("PUT", f"{self._s._path}/archive",
                                  params={"path": remote_dir, "parents": True}, content=content,
                                  idempotent=isinstance(content, bytes)))
            finally:
                buf.close()

        return self._s._run(op())

    def download_dir(self, remote_dir: str, local_dir: str):
        """Downloads `remote_dir`'s contents into `local_dir` (made if missing) through one
        gzip tar (`GET …/archive`). Answers the paths written, relative to `local_dir`."""

        def op():
            data = yield Req("GET", f"{self._s._path}/archive",
                             params={"path": remote_dir, "compress": "gzip"}, raw=True)
            top = posixpath.basename(posixpath.normpath(remote_dir)) or None
            if remote_dir.strip("/") == "":
                top = None
            os.makedirs(local_dir, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
                members = list(_safe_members(tf, top))
                tf.extractall(local_dir, members=members)
            return [m.name for m in members]

        return self._s._run(op())


class Services:
    def __init__(self, session: "SessionBase"):
        self._s = session

    def create(self, name: str, cmd: Command, *, port: Optional[int] = None,
               restart: str = "never", health: Optional[Dict[str, Any]] = None,
               env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None):
        """Starts a supervised service (`restart`: never, on-failure, always; `health`:
        `{"http_path": "/"}` or `{"tcp": True}`)."""
        body: Dict[str, Any] = {"name": name, "restart": restart}
        body.update({"command": cmd} if isinstance(cmd, str) else {"cmd": list(cmd)})
        if port is not None:
            body["port"] = port
        if health is not None:
            body["health"] = health
        if env:
            body["env"] = env
        if cwd is not None:
            body["cwd"] = cwd

        def op():
            return (yield Req("POST", f"{self._s._path}/services", json=body))

        return self._s._run(op())

    def list(self):
        def op():
            return (yield Req("GET", f"{self._s._path}/services"))["services"]

        return self._s._run(op())

    def get(self, name: str):
        def op():
            return (yield Req("GET", f"{self._s._path}/services/{_q(name)}"))

        return self._s._run(op())

    def delete(self, name: str):
        def op():
            return (yield Req("DELETE", f"{self._s._path}/services/{_q(name)}"))

        return self._s._run(op())


class Ports:
    def __init__(self, session: "SessionBase"):
        self._s = session

    def list(self):
        def op():
            return (yield Req("GET", f"{self._s._path}/ports"))["ports"]

        return self._s._run(op())

    def get(self, port: int):
        def op():
            return (yield Req("GET", f"{self._s._path}/ports/{int(port)}"))

        return self._s._run(op())

    def set_public(self, port: int, public: bool = True):
        def op():
            return (yield Req("PATCH", f"{self._s._path}/ports/{int(port)}",
                              json={"public": public}))

        return self._s._run(op())

    def signed_url(self, port: int, ttl: Optional[int] = None):
        """A URL that reaches `port` without a token until it expires (`ttl` seconds, default
        the server's hour): the full URL, with the server's address."""

        def op():
            body = {} if ttl is None else {"ttl_seconds": int(ttl)}
            answer = yield Req("POST", f"{self._s._path}/ports/{int(port)}/url", json=body)
            return self._s._client._config.url + answer["url"]

        return self._s._run(op())

    def url(self, port: int, path: str = "/") -> str:
        """The port proxy's URL for `path` (it needs the token, a signed URL or a public port)."""
        return f"{self._s._client._config.url}{self._s._path}/ports/{int(port)}/{path.lstrip('/')}"


_CREATE_FIELDS = ("name", "title", "template", "image", "resources", "env", "labels", "metadata",
                  "network", "ttl_seconds", "idle_timeout_seconds", "on_idle", "start_at",
                  "volumes", "setup", "services", "wait", "from_checkpoint")


class SessionBase:
    """What Session and AsyncSession share: every call but the PTY."""

    def __init__(self, client: Any, info: Record):
        self._client = client
        self.info: Record = info
        self.id: str = info["id"]
        self._path = f"/v1/sessions/{self.id}"
        self.commands = Commands(self)
        self.files = Files(self)
        self.services = Services(self)
        self.ports = Ports(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.info.get('name')} {self.info.get('state')}>"

    @property
    def client(self) -> Any:
        """The Client (AsyncClient) this session's calls go through: templates, volumes,
        events, tasks of the same server and token."""
        return self._client

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def state(self) -> str:
        """The state when last read (`refresh()` reads it again)."""
        return self.info["state"]

    def _run(self, op):
        return self._client._run(op)

    def _wrap(self, info: Record):
        return type(self)(self._client, info)

    def _update(self, method: str, suffix: str, json: Any = None, idempotent: bool = False):
        def op():
            info = yield Req(method, f"{self._path}{suffix}", json=json, idempotent=idempotent)
            if suffix != "" or method != "DELETE":
                self.info = info
            return info

        return self._run(op())

    def refresh(self):
        """Reads the session again (`info`)."""
        return self._update("GET", "")

    get_info = refresh

    def update(self, **fields: Any):
        """PATCH: name, title, labels, metadata, ttl_seconds, idle_timeout_seconds, on_idle."""
        return self._update("PATCH", "", json=fields)

    def delete(self, purge: bool = False):
        """Terminates the session (soft delete; `purge=True` removes the record too)."""

        def op():
            info = yield Req("DELETE", self._path, params={"purge": True} if purge else None)
            if info is not None:
                self.info = info
            return info

        return self._run(op())

    kill = delete

    # Lifecycle: the API documents these as idempotent, so they are retried like GETs.
    def pause(self):
        return self._update("POST", "/pause", idempotent=True)

    def resume(self):
        return self._update("POST", "/resume", idempotent=True)

    def stop(self):
        return self._update("POST", "/stop", idempotent=True)

    def start(self):
        return self._update("POST", "/start", idempotent=True)

    def restart(self):
        return self._update("POST", "/restart")

    def keepalive(self):
        return self._update("POST", "/keepalive", idempotent=True)

    def extend(self, seconds: int):
        return self._update("POST", "/extend", json={"seconds": int(seconds)})

    def set_timeout(self, seconds: int):
        """The session ends `seconds` from now (E2B's `set_timeout`)."""
        return self._update("POST", "/timeout", json={"seconds": int(seconds)}, idempotent=True)

    def _get(self, suffix: str, key: Optional[str] = None, params=None, raw=False):
        def op():
            answer = yield Req("GET", f"{self._path}{suffix}", params=params, raw=raw)
            return answer[key] if key else answer

        return self._run(op())

    def history(self):
        return self._get("/history", "history")

    def stats(self):
        return self._get("/stats")

    def lineage(self):
        return self._get("/lineage")

    def logs(self) -> Any:
        def op():
            data = yield Req("GET", f"{self._path}/logs", raw=True)
            return data.decode("utf-8", "replace")

        return self._run(op())

    # Checkpoints and forks
    def checkpoint(self, name: str):
        """Saves the session's files under `name`: the checkpoint."""

        def op():
            return (yield Req("POST", f"{self._path}/checkpoints", json={"name": name}, timeout=0))

        return self._run(op())

    def list_checkpoints(self):
        return self._get("/checkpoints", "checkpoints")

    def restore(self, name: str):
        """Replaces the session's files by checkpoint `name`'s (a running session restarts)."""

        def op():
            self.info = yield Req("POST", f"{self._path}/checkpoints/{_q(name)}/restore",
                                  timeout=0)
            return self.info

        return self._run(op())

    def delete_checkpoint(self, name: str):
        def op():
            return (yield Req("DELETE", f"{self._path}/checkpoints/{_q(name)}"))

        return self._run(op())

    def fork(self, n: int = 1, *, name_prefix: Optional[str] = None,
             overrides: Optional[Dict[str, Any]] = None):
        """`n` new sessions that start from this one's files as they are now: a list of
        sessions of this session's class."""
        body: Dict[str, Any] = {"count": int(n)}
        if name_prefix:
            body["name_prefix"] = name_prefix
        if overrides:
            body["overrides"] = overrides

        def op():
            answer = yield Req("POST", f"{self._path}/fork", json=body, timeout=0)
            return [self._wrap(info) for info in answer["sessions"]]

        return self._run(op())

    def commit(self, image: str):
        """Starts making image `image` from this session: the task (`client.tasks.get`)."""

        def op():
            return (yield Req("POST", f"{self._path}/commit", json={"image": image}))

        return self._run(op())

    def get_url(self, port: int, ttl: Optional[int] = None):
        """A signed URL to `port` (see `ports.signed_url`)."""
        return self.ports.signed_url(port, ttl)


def create_op(cls, client, fields: Dict[str, Any]):
    body = {k: v for k, v in fields.items() if v is not None}
    unknown = set(body) - set(_CREATE_FIELDS)
    if unknown:
        raise errors.InvalidArgumentError(f"unknown create fields: {sorted(unknown)}")
    info = yield Req("POST", "/v1/sessions", json=body, timeout=0)
    return cls(client, info)


def connect_op(cls, client, id_or_name: str):
    info = yield Req("GET", f"/v1/sessions/{_q(id_or_name)}")
    return cls(client, info)


def list_op(params: Dict[str, Any]):
    """Every page of `GET /v1/sessions` with these filters (labels as `k=v`)."""
    items: List[Record] = []
    params = {k: v for k, v in params.items() if v is not None}
    while True:
        answer = yield Req("GET", "/v1/sessions", params=params)
        items.extend(answer["sessions"])
        token = answer.get("next_page_token")
        if not token:
            return items
        params["page_token"] = token


def label_params(labels: Optional[Dict[str, str]]) -> Optional[List[str]]:
    return [f"{k}={v}" for k, v in labels.items()] if labels else None


class Templates:
    """`/v1/templates`: `kind: SessionTemplate` documents (YAML text or a dict)."""

    def __init__(self, client):
        self._c = client

    def apply(self, document: Union[str, Dict[str, Any]]):
        def op():
            if isinstance(document, str):
                return (yield Req("POST", "/v1/templates", content=document.encode(),
                                  headers={"Content-Type": "application/yaml"}))
            return (yield Req("POST", "/v1/templates", json=document))

        return self._c._run(op())

    def list(self):
        def op():
            return (yield Req("GET", "/v1/templates"))["templates"]

        return self._c._run(op())

    def get(self, name: str):
        def op():
            return (yield Req("GET", f"/v1/templates/{_q(name)}"))

        return self._c._run(op())

    def delete(self, name: str):
        def op():
            return (yield Req("DELETE", f"/v1/templates/{_q(name)}"))

        return self._c._run(op())


class Volumes:
    def __init__(self, client):
        self._c = client

    def create(self, name: str, size_mb: Optional[int] = None):
        def op():
            body: Dict[str, Any] = {"name": name}
            if size_mb is not None:
                body["size_mb"] = size_mb
            return (yield Req("POST", "/v1/volumes", json=body))

        return self._c._run(op())

    def list(self):
        def op():
            return (yield Req("GET", "/v1/volumes"))["volumes"]

        return self._c._run(op())

    def get(self, name: str):
        def op():
            return (yield Req("GET", f"/v1/volumes/{_q(name)}"))

        return self._c._run(op())

    def delete(self, name: str):
        def op():
            return (yield Req("DELETE", f"/v1/volumes/{_q(name)}"))

        return self._c._run(op())


def event_params(session=None, type=None, since=None, after=None, limit=None):
    if isinstance(type, (list, tuple)):
        type = ",".join(type)
    return {"session": session, "type": type, "since": since, "after": after, "limit": limit}


class Tasks:
    def __init__(self, client):
        self._c = client

    def get(self, task_id: str):
        def op():
            return (yield Req("GET", f"/v1/tasks/{_q(task_id)}"))

        return self._c._run(op())


@dataclass
class EventsPage:
    events: List[Record] = field(default_factory=list)
    next_page_token: str = ""


class EventsBase:
    def __init__(self, client):
        self._c = client

    def list(self, *, session: Optional[str] = None, type: Union[str, Sequence[str], None] = None,
             since: Optional[str] = None, after: Optional[int] = None, limit: Optional[int] = None):
        """One page of events, oldest first (pass the last id as `after` for the next)."""

        def op():
            answer = yield Req("GET", "/v1/events",
                               params=event_params(session, type, since, after, limit))
            return answer["events"]

        return self._c._run(op())


def dumps(obj: Any) -> str:
    return jsonlib.dumps(obj)
