#!/usr/bin/env python3
"""The shell-tool agent (docs/agents.md): runs each message as a shell command in the session
and replies with its output.

A message's content is run by /bin/sh -c in the agent's working directory; the reply's content
is what it wrote (stdout, then stderr), cut to `max_output_bytes`, and its metadata says
{"exit_code": N, "timed_out": bool, "truncated": bool}. Its config ($HUTCH_AGENT_CONFIG) may set
`timeout_seconds` (default 60), `max_output_bytes` (default 65536) and `cwd` (default /).

Delivery is at-least-once, and a command must not run twice: the agent keeps the replies of the
ids it has run (in /persist when the session has it, else in /tmp) and sends the kept reply
again when a message comes back (after a crash of the agent or of the server).
"""
import json
import os
import signal
import socket
import subprocess
import time


def connect(path):
    for _ in range(600):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no message socket at {path}")


class Done:
    """The replies of the messages run so far, by id, on disk: a restarted agent keeps them."""

    def __init__(self, name):
        base = "/persist" if os.path.isdir("/persist") and os.access("/persist", os.W_OK) else "/tmp"
        self.dir = os.path.join(base, ".shell-agent-" + name)
        os.makedirs(self.dir, exist_ok=True)

    def get(self, msg_id):
        try:
            with open(os.path.join(self.dir, str(msg_id))) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def put(self, msg_id, reply):
        tmp = os.path.join(self.dir, f".{msg_id}.tmp")
        with open(tmp, "w") as f:
            json.dump(reply, f)
        os.replace(tmp, os.path.join(self.dir, str(msg_id)))


def run(command, config):
    limit = int(config.get("max_output_bytes", 65536))
    # A group of its own: on a timeout everything the command started goes, not only the shell
    # (a child left holding the pipes would keep the agent waiting).
    p = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=config.get("cwd", "/"),
                         start_new_session=True)
    try:
        stdout, stderr = p.communicate(timeout=float(config.get("timeout_seconds", 60)))
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        stdout, stderr = p.communicate()
        timed_out = True
    out, code = stdout + stderr, (-1 if timed_out else p.returncode)
    text = out.decode("utf-8", "replace")
    return {"content": text[:limit],
            "metadata": {"exit_code": code, "timed_out": timed_out, "truncated": len(text) > limit}}


def main():
    name = os.environ["HUTCH_AGENT_NAME"]
    config = json.loads(os.environ.get("HUTCH_AGENT_CONFIG") or "{}")
    done = Done(name)
    sock = connect(os.environ.get("HUTCH_AGENT_SOCKET", "/run/hutch/agents.sock"))
    stream = sock.makefile("rwb", buffering=0)

    def send(obj):
        stream.write((json.dumps(obj) + "\n").encode())

    send({"type": "hello", "agent": name})
    send({"type": "status", "status": "idle"})
    for line in stream:
        msg = json.loads(line)
        if msg.get("type") != "message":
            continue
        reply = done.get(msg["id"])
        if reply is None:
            send({"type": "status", "status": "busy"})
            reply = run(msg["content"], config)
            done.put(msg["id"], reply)
        send({"type": "reply", "reply_to": msg["id"], **reply})
        send({"type": "status", "status": "idle"})


if __name__ == "__main__":
    main()
