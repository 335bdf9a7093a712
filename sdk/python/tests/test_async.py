"""The async client: the same calls awaited (each test runs its own event loop)."""

import asyncio

import pytest

import hutch
from hutch import AsyncClient, AsyncSession


def test_async_session_commands_files_events(server):
    async def main():
        s = await AsyncSession.create(url=server.url, token=server.token, name="async-1")
        async with s:
            assert s.state == "running"
            assert (await AsyncSession.connect("async-1", url=server.url,
                                               token=server.token)).id == s.id
            r = await s.commands.run("echo hi")
            assert r.stdout == "hi\n"
            chunks = []

            async def on_stdout(data):  # async callbacks are awaited
                chunks.append(data)

            r = await s.commands.run("echo a; sleep 0.05; echo b", on_stdout=on_stdout)
            assert "".join(chunks) == "a\nb\n"
            h = await s.commands.run("echo bg; exit 2", background=True, tag="bg")
            assert (await (await s.commands.connect("bg")).wait()).exit_code == 2
            assert h.tag == "bg"
            await s.files.write("/root/f.txt", "async file")
            assert await s.files.read("/root/f.txt") == "async file"
            assert [e.name for e in await s.files.list("/root")] == ["f.txt"]
            w = await s.files.watch("/root", timeout=20)
            async with w:
                await s.files.write("/root/g.txt", "g")
                async for ev in w:
                    if ev.path == "/root/g.txt":
                        break
            last = (await s.client.events.list(session=s.id))[-1].id
            stream = await s.client.events.stream(session=s.id, after=last, timeout=30)
            assert (await s.pause()).state == "paused"
            with pytest.raises(hutch.ConflictError):
                await s.commands.run("true")
            await s.resume()
            async with stream:
                seen = []
                async for ev in stream:
                    seen.append(ev.type)
                    if ev.type == "session.resumed":
                        break
            assert seen == ["session.paused", "session.resumed"]
            events = await s.client.events.list(session=s.id, type=["session.paused",
                                                                     "session.resumed"])
            assert [e.type for e in events] == ["session.paused", "session.resumed"]
            sessions = await AsyncSession.list(url=server.url, token=server.token, q="async-*")
            assert [x.id for x in sessions] == [s.id]
        assert s.state == "terminated"

    asyncio.run(main())


def test_async_pty_and_errors(server):
    async def main():
        async with AsyncClient(server.url, server.token) as c:
            with pytest.raises(hutch.NotFoundError):
                await c.get_session("missing")
            s = await c.create_session()
            try:
                out = bytearray()
                done = asyncio.Event()

                def on_data(b):
                    out.extend(b)
                    if b"ready 7" in out:
                        done.set()

                pty = await s.pty.create(cmd=["/bin/sh"], rows=10, cols=40, on_data=on_data)
                await pty.send_input("stty size; echo ready $((3+4))\n")
                await asyncio.wait_for(done.wait(), 20)
                assert b"10 40" in out
                await pty.resize(30, 100)
                await pty.send_input("exit 3\n")
                assert (await pty.wait(20)).exit_code == 3
                await pty.close()
                assert (await c.me())["admin"] is True
            finally:
                await s.delete()

    asyncio.run(main())
