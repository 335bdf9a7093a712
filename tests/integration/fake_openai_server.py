#!/usr/bin/env python3
"""A FAKE OpenAI-compatible chat endpoint for tests (agents_examples_test.cc): nothing reachable
from the test machines serves the real one, so examples/agents/openai_agent.py is tested
against this stand-in. It is not a model: it checks what a client must send and answers
deterministically.

POST /v1/chat/completions with "Authorization: Bearer <key>" (the key given with --key) and a
JSON body {model, messages: [{role, content}, …]} answers
  {"id": "chatcmpl-fake-N", "object": "chat.completion", "model": <model>,
   "choices": [{"index": 0, "message": {"role": "assistant",
                "content": "fake(<model>): <last user content> [turns=<user turns>]"},
                "finish_reason": "stop"}],
   "usage": {"prompt_tokens": <words in>, "completion_tokens": <words out>, "total_tokens": …}}
A wrong or missing key is 401 with OpenAI's error shape; anything else malformed is 400.
Usage: fake_openai_server.py --port N --key KEY (port 0: any; the port is printed first).
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()
    served = [0]

    class Handler(BaseHTTPRequestHandler):
        def answer(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, code, message, kind):
            self.answer(code, {"error": {"message": message, "type": kind, "code": None}})

        def do_GET(self):  # the session service's health check
            if self.path == "/health":
                return self.answer(200, {"ok": True})
            return self.error(404, f"no route {self.path}", "invalid_request_error")

        def do_POST(self):
            if self.path != "/v1/chat/completions":
                return self.error(404, f"no route {self.path}", "invalid_request_error")
            if self.headers.get("Authorization") != "Bearer " + args.key:
                return self.error(401, "Incorrect API key provided", "invalid_request_error")
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                model, messages = body["model"], body["messages"]
                users = [m["content"] for m in messages if m["role"] == "user"]
                assert users and all(m["role"] in ("system", "user", "assistant") for m in messages)
            except (ValueError, KeyError, TypeError, AssertionError):
                return self.error(400, "a chat completion needs model and messages", "invalid_request_error")
            served[0] += 1
            content = f"fake({model}): {users[-1]} [turns={len(users)}]"
            words_in = sum(len(m["content"].split()) for m in messages)
            words_out = len(content.split())
            self.answer(200, {
                "id": f"chatcmpl-fake-{served[0]}", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": words_in, "completion_tokens": words_out,
                          "total_tokens": words_in + words_out}})

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
