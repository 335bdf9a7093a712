#!/usr/bin/env python3
"""An agent that answers with any OpenAI-compatible chat endpoint (docs/agents.md).

Its config ($HUTCH_AGENT_CONFIG) names the endpoint and the model:
  {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "temperature": 0.2,
   "system": "You are a helpful assistant.", "api_key_env": "OPENAI_API_KEY"}
The key is read from the environment variable `api_key_env` names (default OPENAI_API_KEY; give
it in the agent's `env`), never from the config, which the session's JSON does not hide.

Each message is one user turn: the conversation so far (kept in /persist when the session has
it, so a restored or remixed session goes on where it was) is POSTed to
{base_url}/chat/completions, and the first choice's content is the reply, with
{"model", "usage"} as its metadata. An endpoint that fails gives a reply whose metadata has
{"error": "..."} (and an error status, so agent_state shows it), never a message left hanging.
Uses only the standard library.
"""
import json
import os
import socket
import time
import urllib.error
import urllib.request


def connect(path):
    for _ in range(600):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no message socket at {path}")


class History:
    """The conversation as chat messages, on disk where the session keeps state."""

    def __init__(self, name):
        base = "/persist" if os.path.isdir("/persist") and os.access("/persist", os.W_OK) else "/tmp"
        self.path = os.path.join(base, f".openai-agent-{name}.json")
        try:
            with open(self.path) as f:
                self.turns = json.load(f)
        except (OSError, ValueError):
            self.turns = {}  # message id -> [user content, assistant content]

    def messages(self, system):
        out = [{"role": "system", "content": system}] if system else []
        for key in sorted(self.turns, key=int):
            user, assistant = self.turns[key]
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return out

    def put(self, msg_id, user, assistant):
        self.turns[str(msg_id)] = [user, assistant]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.turns, f)
        os.replace(tmp, self.path)


def complete(config, messages):
    key = os.environ.get(config.get("api_key_env", "OPENAI_API_KEY"), "")
    body = {"model": config.get("model", "gpt-4o-mini"), "messages": messages}
    if "temperature" in config:
        body["temperature"] = config["temperature"]
    req = urllib.request.Request(
        config.get("base_url", "https://api.openai.com/v1").rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=float(config.get("timeout_seconds", 120))) as r:
        answer = json.load(r)
    return answer["choices"][0]["message"]["content"], {"model": answer.get("model", body["model"]),
                                                          "usage": answer.get("usage", {})}


def main():
    name = os.environ["HUTCH_AGENT_NAME"]
    config = json.loads(os.environ.get("HUTCH_AGENT_CONFIG") or "{}")
    history = History(name)
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
        kept = history.turns.get(str(msg["id"]))
        if kept:  # delivered again: answer as before, without asking the endpoint twice
            send({"type": "reply", "reply_to": msg["id"], "content": kept[1]})
            continue
        send({"type": "status", "status": "busy"})
        turn = history.messages(config.get("system", "")) + [
            {"role": "user", "content": msg["content"]}]
        try:
            content, meta = complete(config, turn)
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as e:
            detail = e.read().decode("utf-8", "replace")[:500] if isinstance(e, urllib.error.HTTPError) else ""
            error = f"{type(e).__name__}: {e} {detail}".strip()
            send({"type": "reply", "reply_to": msg["id"], "content": "", "metadata": {"error": error}})
            send({"type": "error", "message": error})
            send({"type": "status", "status": "idle"})
            continue
        history.put(msg["id"], msg["content"], content)
        send({"type": "reply", "reply_to": msg["id"], "content": content, "metadata": meta})
        send({"type": "status", "status": "idle"})


if __name__ == "__main__":
    main()
