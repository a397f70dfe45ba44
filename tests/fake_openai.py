"""A small local HTTP server that speaks the parts of the OpenAI API the project uses.

Tests point the official client at it with OPENAI_BASE_URL. Failures are scripted: push status codes onto
``server.failures`` and the next requests answer with them before succeeding again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

API_KEY = "test-key-not-secret"
DIM = 16


def fake_vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).normal(size=DIM).round(6).tolist()


class Handler(BaseHTTPRequestHandler):
    server: "FakeOpenAI"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append((self.path, body))
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                              "code": "invalid_api_key"}})
        if self.server.failures:
            status = self.server.failures.pop(0)
            return self._send(status, {"error": {"message": f"scripted failure {status}", "type": "server_error"}})
        if self.path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": fake_vector(text)}
                    for i, text in reversed(list(enumerate(inputs)))]  # out of order on purpose
            return self._send(200, {"object": "list", "data": data, "model": body["model"],
                                    "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        return self._send(404, {"error": {"message": f"no route {self.path}"}})


class FakeOpenAI(ThreadingHTTPServer):
    def __init__(self, handler: type[BaseHTTPRequestHandler] = Handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.requests: list[tuple[str, dict]] = []
        self.failures: list[int] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
