"""A small local HTTP server that speaks the parts of the OpenAI API the project uses.

Tests point the official client at it with OPENAI_BASE_URL. Failures are scripted: push status codes onto
``server.failures`` and the next requests answer with them before succeeding again; push answer faults onto
``server.faults`` (see ``FAULTS``) and the next embeddings requests get a wrong answer with status 200.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

API_KEY = "test-key-not-secret"
DIM = 16


def fake_vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).normal(size=DIM).round(6).tolist()


# Wrong answers with status 200 that an OpenAI-compatible server was seen to give.
FAULTS = ("nan", "empty-vectors", "duplicate-indices", "missing-vector", "fewer-vectors", "mixed-widths",
          "truncated-json", "not-json", "trickle", "silent")


def faulty_body(fault: str, data: list[dict]) -> dict | bytes:
    if fault == "nan":
        data[0]["embedding"] = [float("nan")] * DIM
    elif fault == "empty-vectors":
        for item in data:
            item["embedding"] = []
    elif fault == "duplicate-indices":
        for item in data:
            item["index"] = 0
    elif fault == "missing-vector":
        del data[0]["embedding"]
    elif fault == "fewer-vectors":
        data = data[1:]
    elif fault == "mixed-widths":
        data[0]["embedding"] = data[0]["embedding"][:3]
    body = {"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    if fault == "truncated-json":
        return json.dumps(body).encode()[:40]
    if fault == "not-json":
        return b"<html>502 Bad Gateway</html>"
    return body


class Handler(BaseHTTPRequestHandler):
    server: "FakeOpenAI"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: dict | bytes) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _trickle(self, body: dict, seconds: float) -> None:
        """The whole answer, one byte every ``seconds``: each read succeeds, the answer never ends in time."""
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            for byte in payload:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(seconds)
        except (BrokenPipeError, ConnectionResetError):
            pass

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
            fault = self.server.faults.pop(0) if self.server.faults else None
            if fault == "silent":  # accepts the request, never answers
                time.sleep(self.server.silent_seconds)
                return None
            if fault == "trickle":
                return self._trickle({"object": "list", "data": data, "model": body["model"]}, 0.05)
            if fault:
                return self._send(200, faulty_body(fault, data))
            return self._send(200, {"object": "list", "data": data, "model": body["model"],
                                    "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        return self._send(404, {"error": {"message": f"no route {self.path}"}})


class FakeOpenAI(ThreadingHTTPServer):
    def __init__(self, handler: type[BaseHTTPRequestHandler] = Handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.requests: list[tuple[str, dict]] = []
        self.failures: list[int] = []
        self.faults: list[str] = []  # FAULTS, consumed one per embeddings request
        self.silent_seconds = 30.0
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
