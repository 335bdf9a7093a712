#!/usr/bin/env python3
"""The echo agent (docs/agents.md): replies to every message with its content.

It shows the whole protocol an agent implements: connect to the session's message socket
($HUTCH_AGENT_SOCKET), say hello with its name ($HUTCH_AGENT_NAME), report idle, then for each
message report busy, reply (which acknowledges the message) and report idle again. Delivery is
at-least-once: a message may come again after a crash (of this agent or of the server), and its
reply may then have been lost on the way; an echo is the same every time, so this agent simply
answers again. An agent whose work must not run twice remembers the ids it has done.
"""
import json
import os
import socket
import time


def connect(path):
    # The socket exists once the session's message relay is up; an agent may start first.
    for _ in range(600):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no message socket at {path}")


def main():
    name = os.environ["HUTCH_AGENT_NAME"]
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
        send({"type": "status", "status": "busy"})
        send({"type": "reply", "reply_to": msg["id"], "content": msg["content"]})
        send({"type": "status", "status": "idle"})


if __name__ == "__main__":
    main()
