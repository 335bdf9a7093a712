"""files through the sync client."""

import io
import os

import pytest

from hutch import ConflictError, NotFoundError


def test_write_read_list_stat_move_remove(session):
    e = session.files.write("/work/a/b.txt", "hello", mode=0o600)
    assert e.size == 5 and e.mode == "0600"
    assert session.files.read("/work/a/b.txt") == "hello"
    session.files.write("/work/a/bin", bytes(range(256)))
    assert session.files.read("/work/a/bin", format="bytes") == bytes(range(256))
    session.files.write("/work/a/stream", io.BytesIO(b"x" * 300000))
    assert session.files.stat("/work/a/stream").size == 300000
    assert sorted(x.name for x in session.files.list("/work/a")) == ["b.txt", "bin", "stream"]
    assert session.files.exists("/work/a/b.txt") and not session.files.exists("/work/nope")
    session.files.make_dir("/work/d/e")
    assert session.files.stat("/work/d/e").type == "directory"
    assert [x.path for x in session.files.list("/work/d", depth=2)] == ["/work/d/e"]
    session.files.move("/work/a/b.txt", "/work/d/c.txt")
    assert session.files.read("/work/d/c.txt") == "hello"
    with pytest.raises(NotFoundError):
        session.files.read("/work/a/b.txt")
    with pytest.raises(ConflictError):
        session.files.remove("/work/d")
    session.files.remove("/work", recursive=True)
    assert not session.files.exists("/work")


def test_upload_and_download_dir(session, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "sub" / "deep.bin").write_bytes(os.urandom(70000))
    os.symlink("top.txt", src / "link")
    r = session.files.upload_dir(str(src), "/up/load")
    assert r["files"] == 2
    assert session.files.read("/up/load/sub/deep.bin", format="bytes") == \
        (src / "sub" / "deep.bin").read_bytes()
    assert session.files.stat("/up/load/link").type == "symlink"
    dst = tmp_path / "dst"
    names = session.files.download_dir("/up/load", str(dst))
    assert sorted(names) == ["link", "sub", "sub/deep.bin", "top.txt"]
    assert (dst / "top.txt").read_text() == "top"
    assert (dst / "sub" / "deep.bin").read_bytes() == (src / "sub" / "deep.bin").read_bytes()
    assert os.readlink(dst / "link") == "top.txt"
    session.files.remove("/up", recursive=True)


def test_watch(session):
    session.files.make_dir("/watched")
    with session.files.watch("/watched", recursive=True, timeout=20) as w:
        session.files.write("/watched/new.txt", "x")
        session.files.remove("/watched/new.txt")
        seen = []
        for ev in w:
            seen.append((ev.type, ev.path))
            if ev.type == "deleted":
                break
    # An upload is written beside the target and renamed over it: the name appears by a move.
    assert ("moved", "/watched/new.txt") in seen and seen[-1] == ("deleted", "/watched/new.txt")
    assert seen[0][0] == "created" and seen[0][1].startswith("/watched/.new.txt.")
    session.files.remove("/watched", recursive=True)
