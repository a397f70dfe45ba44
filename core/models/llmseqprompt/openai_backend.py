"""The OpenAI LLMSeqPrompt backend: the real fine-tuning flow with the official ``openai`` client.

1. Write the chat-format JSONL (the task's prompt, :mod:`.tasks`), train and validation.
2. Estimate the token cost *before* anything is sent (:func:`estimate_cost`, ``spending_estimate``); the CLI
   prints it and needs ``--yes``, the app a ticked confirmation: ``fit(..., confirm_spending=True)``. Nothing
   is uploaded without that confirmation.
3. Upload both files (``files.create``), create the job (``fine_tuning.jobs.create``, base model
   ``gpt-4o-mini-2024-07-18`` by default, ``gpt-3.5-turbo`` selectable), poll it (``jobs.retrieve`` and
   ``jobs.list_events`` for the step count) and store the fine-tuned model id under
   ``cache/llm/openai/`` — keyed by the training data and options, so the same job is never paid twice,
   and a poll that was interrupted resumes the stored job instead of starting a new one.
4. Inference: ``chat.completions`` — GenItem with ``n`` samples (the paper's 20), temperature 0.25, top_p 1;
   a list task one answer at temperature 0, top_p 1 — at most ``concurrency`` requests at once; 429 and 5xx
   answers are retried by the client with
   exponential back-off (honouring ``Retry-After``), ``max_retries`` times.

``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` are read from the environment by the client (the test suite
points the latter at a local server).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from core.common import Progress
from core.models.llmseqprompt.generator import LLMError, array_text, text_array
from core.models.llmseqprompt.tasks import LIST_LENGTH, Example, Prompt, Task
from core.storage import CACHE_DIR, atomic_write_text, read_json

BASE_MODELS = ("gpt-4o-mini-2024-07-18", "gpt-3.5-turbo")
# US$ per 1M tokens (training, fine-tuned-model input, fine-tuned-model output), OpenAI's published prices
# in 2024; check https://openai.com/api/pricing before spending real money.
PRICES = {"gpt-4o-mini-2024-07-18": (3.00, 0.30, 1.20), "gpt-3.5-turbo": (8.00, 3.00, 6.00)}
DEFAULT_EPOCHS = 3  # what OpenAI's "auto" picks for data sets of this size; used for the estimate only
POLL_SECONDS = float(os.environ.get("LLMSEQ_OPENAI_POLL_SECONDS", "10"))
MAX_ANSWER_TOKENS = 64  # one item name
MAX_LIST_TOKENS = LIST_LENGTH * MAX_ANSWER_TOKENS + 16  # a list task's numbered names between BEGIN and END


class OpenAIKeyMissing(LLMError):
    pass


def require_key() -> None:
    if not os.environ.get("OPENAI_API_KEY", "").strip():
        raise OpenAIKeyMissing("OPENAI_API_KEY is not set, so nothing was sent to OpenAI; "
                               "export your key (and OPENAI_BASE_URL for a compatible server) and run again.")


def approximate_tokens(text: str) -> int:
    """OpenAI's rule of thumb, ~4 characters a token (tiktoken would fetch its tables from the internet)."""
    return math.ceil(len(text) / 4)


def record_tokens(messages: list[dict[str, str]]) -> int:
    return sum(approximate_tokens(m["content"]) + 4 for m in messages) + 3  # per-message and reply framing


@dataclass(frozen=True)
class CostEstimate:
    base_model: str
    train_examples: int
    validation_examples: int
    tokens_per_epoch: int  # training file, approximate
    epochs: int
    training_usd: float
    prompts: int  # prompts the inference estimate is for
    inference_usd: float  # n samples per prompt

    def describe(self) -> str:
        return (f"{self.base_model}: {self.train_examples:,} training + {self.validation_examples:,} validation "
                f"examples, ~{self.tokens_per_epoch:,} tokens an epoch x {self.epochs} epochs -> about "
                f"${self.training_usd:,.2f} to fine-tune; generating for {self.prompts:,} prompts about "
                f"${self.inference_usd:,.2f} (approximate token counts, 2024 prices)")


def estimate_cost(train: Sequence[Example], validation: Sequence[Example],
                  base_model: str, epochs: int, n_prompts: int, n_samples: int,
                  task: Task = Task("genitem")) -> CostEstimate:
    """The approximate cost in US$ of fine-tuning on ``train`` (``epochs``, 0 = OpenAI's automatic choice) and
    answering ``n_prompts`` prompts (``n_samples`` answers each: GenItem's; a list task answers once). Raises
    :class:`LLMError` for an unknown base model."""
    if base_model not in PRICES:
        raise LLMError(f"unknown OpenAI base model '{base_model}'; use one of {list(BASE_MODELS)}")
    training_price, input_price, output_price = PRICES[base_model]
    tokens = sum(record_tokens(task.messages(prompt, answer)) for prompt, answer in train)
    epochs = epochs or DEFAULT_EPOCHS
    n_samples = 1 if task.is_list else n_samples
    prompt_tokens = np.mean([record_tokens(task.messages(p)) for p, _ in train]) if train else 0.0
    answer_tokens = np.mean([approximate_tokens(task.answer_text(a)) for _, a in train]) if train else 0.0
    inference = n_prompts * (prompt_tokens * input_price + n_samples * answer_tokens * output_price) / 1e6
    return CostEstimate(base_model, len(train), len(validation), int(tokens), epochs,
                        round(tokens * epochs * training_price / 1e6, 2), n_prompts, round(float(inference), 2))


def write_jsonl(examples: Sequence[Example], path: Path, task: Task) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        for prompt, answer in examples:
            out.write(json.dumps({"messages": task.messages(prompt, answer)}, ensure_ascii=False) + "\n")
    return path


def _api_error(err: Exception) -> LLMError:
    """One sentence for what the API answered."""
    import openai

    if isinstance(err, openai.AuthenticationError):
        return LLMError(f"OpenAI rejected the API key (401): {_message(err)}")
    if isinstance(err, openai.RateLimitError):
        return LLMError(f"OpenAI is still rate-limiting (429) after the retries: {_message(err)}")
    if isinstance(err, openai.APIConnectionError):
        return LLMError(f"cannot reach the OpenAI API ({err.__class__.__name__}); check the network and "
                        "OPENAI_BASE_URL.")
    if isinstance(err, openai.APIStatusError):
        return LLMError(f"OpenAI answered {err.status_code}: {_message(err)}")
    return LLMError(str(err))


def _message(err: Exception) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(err, "message", err))


@dataclass(frozen=True)
class OpenAIConfig:
    """The OpenAI backend's own options (taken by name from LLMSeqPrompt's; their help lives there)."""

    task: str
    openai_model: str
    openai_epochs: int
    concurrency: int
    max_retries: int
    n_samples: int
    temperature: float
    top_p: float
    seed: int


class OpenAIGenerator:
    """The :class:`~.generator.NameGenerator` on OpenAI's fine-tuning and chat APIs (module docstring)."""

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.task = Task(config.task)
        self.model_id = ""  # the fine-tuned model, e.g. "ft:gpt-4o-mini-2024-07-18:org::abc123"
        self.job_id = ""

    @property
    def label(self) -> str:
        return f"OpenAI {self.model_id or self.config.openai_model} (fine-tuned)"

    def _client(self):
        import openai

        require_key()
        return openai.OpenAI(max_retries=self.config.max_retries, timeout=120.0)

    # ------------------------------------------------------------------------------------ fine-tuning
    def record_path(self, train: Sequence[Example], validation: Sequence[Example]) -> Path:
        # GenItem's pairs as they were hashed before the tasks (names, target name): its stored jobs stay found.
        records = [[self.task.messages(p, a) if self.task.is_list else [list(p.session), a[0]] for p, a in part]
                   for part in (train, validation)]
        digest = hashlib.sha256(json.dumps([self.config.openai_model, self.config.openai_epochs, self.config.seed,
                                            os.environ.get("OPENAI_BASE_URL", ""), *records]).encode())
        return CACHE_DIR / "llm" / "openai" / f"{digest.hexdigest()[:16]}.json"

    def spending_estimate(self, train: Sequence[Example], validation: Sequence[Example], n_prompts: int) -> str | None:
        """The cost of a new fine-tuning job (and of generating for ``n_prompts``); None when this data's job
        is already stored (paid for)."""
        if self.record_path(train, validation).exists():
            return None
        c = self.config
        return estimate_cost(train, validation, c.openai_model, c.openai_epochs, n_prompts, c.n_samples,
                             self.task).describe()

    def fit(self, train: Sequence[Example], validation: Sequence[Example], titles: Sequence[str],
            progress: Progress | None = None, confirm_spending: bool = False) -> None:
        """The stored fine-tuned model for this data, else (only when ``confirm_spending``) a new job."""

        if self.config.openai_model not in PRICES:
            raise LLMError(f"unknown OpenAI base model '{self.config.openai_model}'; use one of {list(BASE_MODELS)}")
        record_path = self.record_path(train, validation)
        record = read_json(record_path) if record_path.exists() else {}
        if not isinstance(record, dict):  # damaged: it may have held a paid job's id, so never start another
            raise LLMError(f"{record_path}: the record of this data's fine-tuning job is damaged; find the job on "
                           "your OpenAI dashboard (it may have been paid for), then delete this file to start anew.")
        if record.get("fine_tuned_model"):
            self.model_id, self.job_id = record["fine_tuned_model"], record.get("job_id", "")
            return
        client = self._client()
        if not record.get("job_id"):
            if not confirm_spending:
                raise LLMError("no fine-tuned OpenAI model is stored for this data; start one (it costs money) "
                               "with `python -m core finetune --backend openai --yes`.")
            record = self._start_job(client, train, validation)
            atomic_write_text(record_path, json.dumps(record, indent=2))
        self.job_id = record["job_id"]
        job = self._wait(client, self.job_id, progress)
        record.update(fine_tuned_model=job.fine_tuned_model, status=job.status,
                      trained_tokens=getattr(job, "trained_tokens", None))
        atomic_write_text(record_path, json.dumps(record, indent=2))
        self.model_id = job.fine_tuned_model

    def _start_job(self, client, train, validation) -> dict:
        import openai

        try:
            with tempfile.TemporaryDirectory() as folder:
                ids = {}
                for role, examples in (("train", train), ("validation", validation)):
                    if not examples:
                        continue
                    path = write_jsonl(examples, Path(folder) / f"llmseqprompt-{role}.jsonl", self.task)
                    with open(path, "rb") as handle:
                        ids[role] = client.files.create(file=handle, purpose="fine-tune").id
            options = {"model": self.config.openai_model, "training_file": ids["train"], "seed": self.config.seed,
                       "suffix": "llmseqprompt"}
            if "validation" in ids:
                options["validation_file"] = ids["validation"]
            if self.config.openai_epochs:
                options["hyperparameters"] = {"n_epochs": self.config.openai_epochs}
            job = client.fine_tuning.jobs.create(**options)
        except openai.OpenAIError as err:
            raise _api_error(err) from None
        return {"job_id": job.id, "base_model": self.config.openai_model, "training_file": ids["train"],
                "validation_file": ids.get("validation"), "created": int(time.time())}

    def _wait(self, client, job_id: str, progress: Progress | None):
        import openai

        step_pattern = re.compile(r"Step (\d+)/(\d+)")
        while True:
            try:
                job = client.fine_tuning.jobs.retrieve(job_id)
                if progress:
                    events = client.fine_tuning.jobs.list_events(job_id, limit=20).data
                    steps = [step_pattern.search(e.message or "") for e in events]
                    step = next((m for m in steps if m), None)
                    if step:
                        progress(int(step.group(1)), int(step.group(2)), f"OpenAI job {job_id}: {job.status}")
                    else:
                        progress(0, 1, f"OpenAI job {job_id}: {job.status}")
            except openai.OpenAIError as err:
                raise _api_error(err) from None
            if job.status == "succeeded":
                return job
            if job.status in ("failed", "cancelled"):
                reason = getattr(job.error, "message", None) if job.error else None
                raise LLMError(f"OpenAI fine-tuning job {job_id} {job.status}"
                               + (f": {reason}" if reason else "; see the job's events on OpenAI's dashboard."))
            time.sleep(POLL_SECONDS)

    # ------------------------------------------------------------------------------------ sampling
    def sample(self, prompts: Sequence[Prompt], progress: Progress | None = None) -> list[list[str]]:
        import openai

        client = self._client()
        c = self.config
        task = self.task
        # A list task answers once, greedily (the paper: temperature 0, top_p 1); GenItem samples n names.
        n, temperature, top_p = (1, 0.0, 1.0) if task.is_list else (c.n_samples, c.temperature, c.top_p)

        def ask(prompt: Prompt) -> list[str]:
            answer = client.chat.completions.create(
                model=self.model_id, messages=task.messages(prompt), n=n, temperature=temperature, top_p=top_p,
                max_tokens=MAX_LIST_TOKENS if task.is_list else MAX_ANSWER_TOKENS, seed=c.seed)
            choices = sorted(answer.choices, key=lambda choice: choice.index)
            return [(choice.message.content or "").strip() for choice in choices]

        out: list[list[str]] = []
        try:
            with ThreadPoolExecutor(max_workers=max(1, c.concurrency)) as pool:
                for i, names in enumerate(pool.map(ask, prompts)):
                    out.append(names)
                    if progress:
                        progress(i + 1, len(prompts), "asking OpenAI")
        except openai.OpenAIError as err:
            raise _api_error(err) from None
        return out

    # ------------------------------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        return {"openai_model_id": text_array(self.model_id)}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.model_id = array_text(arrays["openai_model_id"])
