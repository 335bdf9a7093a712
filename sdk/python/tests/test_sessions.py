"""Sessions through the sync client, against the real server of conftest.py."""

import httpx
import pytest

import hutch
from hutch import ConflictError, InvalidArgumentError, NotFoundError, Session


def test_create_connect_list_update_delete(server, client):
    s = Session.create(url=server.url, token=server.token, name="life", labels={"k": "v"},
                       env={"GREETING": "hi"}, ttl_seconds=600)
    assert s.state == "running" and s.name == "life"
    assert s.commands.run("echo $GREETING").stdout == "hi\n"
    assert Session.connect("life", url=server.url, token=server.token).id == s.id
    ids = [x.id for x in Session.list(labels={"k": "v"}, client=client)]
    assert s.id in ids
    s.update(labels={"k": "w"})
    assert s.info.labels == {"k": "w"}
    assert s.id not in [x.id for x in client.list_sessions(labels={"k": "v"})]
    before = s.info.expires_at
    s.extend(60)
    assert s.info.expires_at > before
    s.set_timeout(300)
    s.keepalive()
    assert "running" in [h["to"] for h in s.history()]
    assert s.stats()["pids"] >= 1
    assert isinstance(s.logs(), str)
    assert s.lineage()["session"]["id"] == s.id
    s.delete()
    assert s.state == "terminated"
    s.delete()  # twice is fine
    with pytest.raises(ConflictError):
        s.commands.run("true")


def test_pause_resume_stop_start_restart(client):
    with client.create_session(name="cycle") as s:
        s.files.write("/root/keep.txt", "kept")
        assert s.pause().state == "paused"
        s.pause()  # idempotent
        with pytest.raises(ConflictError) as e:
            s.commands.run("true")
        assert e.value.code == "conflict" and e.value.status == 409 and e.value.message
        assert s.resume().state == "running"
        assert s.stop().state == "stopped"
        assert s.start().state == "running"
        assert s.files.read("/root/keep.txt") == "kept"
        assert s.restart().state == "running"
        assert s.refresh().state == "running"
    assert s.state == "terminated"


def test_typed_errors_carry_code_and_message(server, client):
    with pytest.raises(NotFoundError) as e:
        Session.connect("nope-nope", client=client)
    assert e.value.code == "not_found" and e.value.status == 404 and "nope-nope" in e.value.message
    with pytest.raises(InvalidArgumentError) as e:
        Session.create(client=client, resources={"memory_mb": "lots"})
    assert "memory_mb" in e.value.message
    with pytest.raises(hutch.UnauthenticatedError):
        Session.connect("x", url=server.url, token="hutch_wrong")
    with pytest.raises(InvalidArgumentError):
        Session.create(client=client, nmae="typo")  # caught before any request


def test_checkpoint_restore_fork(client):
    with client.create_session(name="cp") as s:
        s.files.write("/root/state.txt", "one")
        try:
            cp = s.checkpoint("first")
        except ConflictError as e:  # a server with tmpfs layers has no checkpoints
            pytest.skip(f"no session disks: {e}")
        assert cp.name == "first" and cp.valid
        s.files.write("/root/state.txt", "two")
        assert [c.name for c in s.list_checkpoints()] == ["first"]
        s.restore("first")
        assert s.state == "running" and s.files.read("/root/state.txt") == "one"
        kids = s.fork(2, name_prefix="kid")
        try:
            assert sorted(k.name for k in kids) == ["kid-1", "kid-2"]
            assert all(isinstance(k, Session) and k.info.parent_id == s.id for k in kids)
            assert kids[0].files.read("/root/state.txt") == "one"
        finally:
            for k in kids:
                k.delete()
        assert s.delete_checkpoint("first") == {"deleted": "first"}
        assert s.list_checkpoints() == []


def test_services_ports_and_signed_urls(server, session):
    svc = session.services.create("web", ["python3", "-m", "http.server", "8000",
                                          "--bind", "127.0.0.1", "--directory", "/root"],
                                  port=8000, restart="on-failure", health={"http_path": "/"})
    try:
        assert svc.name == "web" and svc.port == 8000
        assert [x.name for x in session.services.list()] == ["web"]
        session.files.write("/root/hello.txt", "hello from the session")
        for _ in range(100):
            if session.services.get("web").health == "healthy":
                break
            import time
            time.sleep(0.1)
        assert session.services.get("web").health == "healthy"
        url = session.get_url(8000, ttl=120)
        assert url.startswith(server.url) and "hutch_sig=" in url
        r = httpx.get(url.replace("/?", "/hello.txt?"))
        assert r.status_code == 200 and r.text == "hello from the session"
        assert httpx.get(session.ports.url(8000, "hello.txt")).status_code == 401
        # A service started through POST …/services is not linked as the port's `service`
        # (only a session's own services are, today): the port shows as listening.
        assert any(p.port == 8000 and p.listening for p in session.ports.list())
        assert session.ports.set_public(8000).public is True
        assert httpx.get(session.ports.url(8000, "hello.txt")).status_code == 200
        assert session.ports.set_public(8000, False).public is False
        assert session.ports.get(8000).public is False
    finally:
        session.services.delete("web")
        session.files.remove("/root/hello.txt")


def test_templates(client):
    doc = """kind: SessionTemplate
metadata:
  name: py-tpl
spec:
  env: {FROM_TEMPLATE: "yes"}
  labels: {tpl: "1"}
"""
    t = client.templates.apply(doc)
    assert t["metadata"]["name"] == "py-tpl"
    assert "py-tpl" in [x["metadata"]["name"] for x in client.templates.list()]
    assert client.templates.get("py-tpl")["spec"]["env"] == {"FROM_TEMPLATE": "yes"}
    with Session.create("py-tpl", client=client) as s:
        assert s.info.template == "py-tpl"
        assert s.commands.run("echo $FROM_TEMPLATE").stdout == "yes\n"
    client.templates.apply({"kind": "SessionTemplate", "metadata": {"name": "py-tpl"},
                            "spec": {"env": {"FROM_TEMPLATE": "json"}}})
    assert client.templates.get("py-tpl")["spec"]["env"] == {"FROM_TEMPLATE": "json"}
    assert client.templates.delete("py-tpl") == {"deleted": "py-tpl"}
    with pytest.raises(NotFoundError):
        client.templates.get("py-tpl")


def test_volumes(client):
    try:
        v = client.volumes.create("pyvol", size_mb=16)
    except hutch.UnavailableError as e:  # no loop devices or mke2fs on this host
        pytest.skip(str(e))
    try:
        assert v.name == "pyvol" and v.size_mb == 16
        assert [x.name for x in client.volumes.list()] == ["pyvol"]
        with client.create_session(volumes=[{"volume": "pyvol", "path": "/data"}]) as s:
            s.files.write("/data/x", "on the volume")
            assert client.volumes.get("pyvol").sessions[0].id == s.id
        with client.create_session(volumes=[{"volume": "pyvol", "path": "/data",
                                             "read_only": True}]) as s:
            assert s.files.read("/data/x") == "on the volume"
    finally:
        client.volumes.delete("pyvol")
    with pytest.raises(NotFoundError):
        client.volumes.get("pyvol")


def test_events_list_and_stream(client, session):
    first = client.events.list(session=session.id, type="session.ready")
    assert first and first[0].type == "session.ready" and first[0].session_id == session.id
    last = client.events.list(session=session.id)[-1].id
    with client.events.stream(session=session.id, after=last, timeout=30) as stream:
        session.pause()
        session.resume()
        seen = []
        for ev in stream:
            seen.append(ev.type)
            if ev.type == "session.resumed":
                break
    assert seen == ["session.paused", "session.resumed"]
    assert stream.last_id is not None


def test_client_me_and_version(client):
    assert client.me()["admin"] is True
    assert client.version()["api"] == "v1"


def test_commit_and_tasks(client, session):
    # Sessions of image `host` cannot be committed (their files are the host's own): the call
    # goes out and its 409 comes back typed; a task that does not exist is a 404.
    with pytest.raises(ConflictError) as e:
        session.commit("from-host")
    assert "host" in e.value.message
    with pytest.raises(NotFoundError):
        client.tasks.get("tsk_nope")
    assert client.get_session(session.name).id == session.id
