"""A local HTTP server speaking the OpenAI endpoints of LLMSeqPrompt's fine-tuning flow.

``/v1/files`` (multipart upload), ``/v1/fine_tuning/jobs`` (create, retrieve, list_events) and
``/v1/chat/completions``. The official client is pointed at it with ``OPENAI_BASE_URL``. Scripted failures:
``rate_limited`` chat requests answer 429 first, a wrong key answers 401 everywhere, ``fail_jobs`` makes
jobs end ``failed``. Chat answers are a function ``answer(user_message, n)`` the test sets.
"""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import Callable

from fake_openai import FakeOpenAI

API_KEY = "sk-test-not-secret"


class Handler(BaseHTTPRequestHandler):
    server: "FakeFineTuning"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {API_KEY}":
            return True
        self._send(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                   "code": "invalid_api_key", "param": None}})
        return False

    def do_GET(self):  # noqa: N802
        server = self.server
        server.log.append(("GET", self.path))
        if not self._authorised():
            return
        events = re.fullmatch(r"/v1/fine_tuning/jobs/([^/?]+)/events(\?.*)?", self.path)
        if events:
            job = server.jobs[events.group(1)]
            data = [{"object": "fine_tuning.job.event", "id": f"ev-{i}", "created_at": 0, "level": "info",
                     "message": f"Step {i}/3: training loss=0.{9 - i}", "type": "metrics"}
                    for i in range(min(job["_polls"], 3), 0, -1)]
            return self._send(200, {"object": "list", "data": data, "has_more": False})
        job = re.fullmatch(r"/v1/fine_tuning/jobs/([^/?]+)", self.path)
        if job and job.group(1) in server.jobs:
            record = server.jobs[job.group(1)]
            record["_polls"] += 1
            if record["_polls"] == 1:
                record["status"] = "running"
            elif record["_polls"] >= 3:
                if server.fail_jobs:
                    record["status"] = "failed"
                    record["error"] = {"code": "invalid_training_file", "param": "training_file",
                                       "message": "The job failed due to an invalid training file."}
                else:
                    record["status"] = "succeeded"
                    record["fine_tuned_model"] = f"ft:{record['model']}:test::{record['id'][-6:]}"
                    record["trained_tokens"] = 1234
            return self._send(200, {k: v for k, v in record.items() if not k.startswith("_")})
        self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):  # noqa: N802
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server.log.append(("POST", self.path))
        if not self._authorised():
            return
        if self.path == "/v1/files":
            file_id = f"file-{len(server.files) + 1}"
            server.files[file_id] = body
            return self._send(200, {"object": "file", "id": file_id, "bytes": len(body), "created_at": int(time.time()),
                                    "filename": "data.jsonl", "purpose": "fine-tune", "status": "processed"})
        request = json.loads(body or b"{}")
        if self.path == "/v1/fine_tuning/jobs":
            job_id = f"ftjob-{len(server.jobs) + 1:06d}"
            server.jobs[job_id] = {
                "object": "fine_tuning.job", "id": job_id, "model": request["model"], "created_at": int(time.time()),
                "finished_at": None, "fine_tuned_model": None, "organization_id": "org-test", "result_files": [],
                "status": "validating_files", "validation_file": request.get("validation_file"),
                "training_file": request["training_file"], "hyperparameters": {"n_epochs": "auto"},
                "trained_tokens": None, "error": None, "seed": request.get("seed", 0), "_polls": 0}
            server.job_requests.append(request)
            return self._send(200, {k: v for k, v in server.jobs[job_id].items() if not k.startswith("_")})
        if self.path == "/v1/chat/completions":
            server.chat_requests.append(request)
            if server.rate_limited > 0:
                server.rate_limited -= 1
                return self._send(429, {"error": {"message": "Rate limit reached.", "type": "requests",
                                                  "code": "rate_limit_exceeded", "param": None}},
                                  headers={"retry-after-ms": "5"})
            user = next(m["content"] for m in request["messages"] if m["role"] == "user")
            names = server.answer(user, request.get("n", 1))
            choices = [{"index": i, "finish_reason": "stop", "logprobs": None,
                        "message": {"role": "assistant", "content": name, "refusal": None}}
                       for i, name in enumerate(names)]
            return self._send(200, {"object": "chat.completion", "id": "chatcmpl-test", "created": int(time.time()),
                                    "model": request["model"], "choices": choices,
                                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
        self._send(404, {"error": {"message": f"no route {self.path}"}})


class FakeFineTuning(FakeOpenAI):
    daemon_threads = True

    def __init__(self, answer: Callable[[str, int], list[str]]):
        super().__init__(Handler)  # the embeddings' fake server, with this handler
        self.answer = answer
        self.log: list[tuple[str, str]] = []
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.job_requests: list[dict] = []
        self.chat_requests: list[dict] = []
        self.rate_limited = 0
        self.fail_jobs = False
