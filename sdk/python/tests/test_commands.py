"""commands and the PTY through the sync client."""

import threading
import time

import pytest

import hutch


def test_run_string_argv_env_cwd_stdin(session):
    r = session.commands.run("echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = session.commands.run(["printf", "%s-%s", "a", "b"])
    assert r.stdout == "a-b" and r.exit_code == 0
    r = session.commands.run("echo $X; pwd; cat", env={"X": "1"}, cwd="/tmp", stdin="in")
    assert r.stdout == "1\n/tmp\nin"


def test_run_streams_output_to_callbacks(session):
    out, err = [], []
    r = session.commands.run("for i in 1 2 3; do echo $i; sleep 0.05; done; echo e >&2",
                             on_stdout=out.append, on_stderr=err.append)
    assert "".join(out) == "1\n2\n3\n" and len(out) >= 2  # as written, not at the end
    assert "".join(err) == "e\n" and r.stdout == "1\n2\n3\n" and r.exit_code == 0


def test_run_timeout_and_check(session):
    r = session.commands.run("sleep 30", timeout=1)
    assert r.timed_out and r.duration_ms < 10000
    with pytest.raises(hutch.CommandExitError) as e:
        session.commands.run("echo bad >&2; exit 4", check=True)
    assert e.value.result.exit_code == 4 and "bad" in str(e.value)


def test_background_reattach_by_tag(session):
    h = session.commands.run("for i in 1 2 3; do echo line$i; sleep 0.2; done; exit 7",
                             background=True, tag="counter")
    assert h.tag == "counter" and h.pid > 0
    assert "counter" in [p.tag for p in session.commands.list()]
    again = session.commands.connect("counter")
    out = []
    r = again.wait(on_stdout=out.append)
    assert r.exit_code == 7 and r.stdout == "line1\nline2\nline3\n" and "".join(out) == r.stdout
    assert again.refresh().state != "running"
    assert session.commands.connect(h.pid).output() == "line1\nline2\nline3\n"


def test_background_stdin_and_kill(session):
    h = session.commands.run("read x; echo got $x; sleep 60", background=True, tag="reader")
    h.send_stdin("hello\n")
    for _ in range(100):
        if "got hello" in h.output():
            break
        time.sleep(0.05)
    assert h.output() == "got hello\n"
    h.kill()
    r = h.wait(timeout=20)
    assert r.exit_code == -1 and r.signal == 9


def test_run_code_and_interrupt(session):
    assert session.commands.run_code("print(6*7)").stdout == "42\n"
    assert session.commands.run_code("echo $0", language="bash").exit_code == 0
    # Interrupted only once Python runs its loop: a SIGINT before the interpreter set up its
    # handler just kills it (signal 2, no KeyboardInterrupt).
    ready = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", session.commands.run(
        "python3 -u -c 'import time\nprint(\"ready\")\nwhile True: time.sleep(0.01)'",
        on_stdout=lambda d: ready.set())))
    t.start()
    assert ready.wait(20)
    assert session.commands.interrupt() == 1
    t.join(20)
    assert "KeyboardInterrupt" in result["r"].stderr


def test_pty_input_resize_kill(session):
    buf = bytearray()
    got = threading.Condition()

    def on_data(b):
        with got:
            buf.extend(b)
            got.notify_all()

    def wait_for(text):
        with got:
            assert got.wait_for(lambda: text in buf, timeout=20), bytes(buf)

    pty = session.pty.create(rows=24, cols=80, on_data=on_data, cmd=["/bin/sh"])
    pty.send_input("tty; stty size\n")
    wait_for(b"24 80")
    assert b"/dev/pts/" in buf
    pty.resize(50, 132)
    pty.send_input("stty size\n")
    wait_for(b"50 132")
    pty.kill()
    result = pty.wait(timeout=20)
    assert result.signal == 9
    pty.close()
    with session.pty.create(cmd="exit 5") as p:
        assert p.wait(timeout=20).exit_code == 5


def test_client_timeout_option(server, session):
    c = hutch.Client(server.url, server.token, timeout=0.5)
    s = hutch.Session.connect(session.id, client=c)
    h = s.commands.run("sleep 5", background=True, tag="slow")
    start = time.monotonic()
    with pytest.raises(hutch.errors.TimeoutError):
        h.wait(timeout=0.5)
    assert time.monotonic() - start < 4
    h.kill()
    c.close()
