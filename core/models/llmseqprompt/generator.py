"""What LLMSeqPrompt asks of a language-model backend: the :class:`NameGenerator` interface.

A backend learns, from (prompt, answer) pairs of one task (:mod:`.tasks`: GenItem names the next item,
GenList, Classify and Rank answer ranked lists), to answer new prompts. The local backend (:mod:`.local`)
and the OpenAI one (:mod:`.openai_backend`) implement it; each reads only its own small config, built from
the model's options by :func:`options_for`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Protocol, Sequence, TypeVar

import numpy as np

from core.common import Progress, UserError
from core.models.llmseqprompt.tasks import Example, Prompt

C = TypeVar("C")


class LLMError(UserError, RuntimeError):
    """A language-model backend cannot go on (no key, a rejected request, a failed job, a bad model folder);
    the message says why in one sentence."""


class NameGenerator(Protocol):
    """A language model fine-tuned on one task's (prompt, answer) pairs."""

    @property
    def label(self) -> str:
        """What generates the names, honestly (e.g. "... trained from scratch ... (not a pretrained LLM)")."""
        ...

    def fit(self, train: Sequence[Example], validation: Sequence[Example], titles: Sequence[str],
            progress: Progress | None = None, confirm_spending: bool = False) -> None:
        """Fine-tune on the pairs (``validation`` for early stopping; ``titles``: the catalog's, for a
        tokenizer). A backend that costs money starts paying only with ``confirm_spending``. Raises
        :class:`LLMError` when it cannot."""
        ...

    def sample(self, prompts: Sequence[Prompt], progress: Progress | None = None) -> list[list[str]]:
        """The answers' raw texts for each prompt: GenItem ``n_samples`` sampled names, a list task one
        answer (temperature 0) for :meth:`.tasks.Task.parse`."""
        ...

    def spending_estimate(self, train: Sequence[Example], validation: Sequence[Example], n_prompts: int) -> str | None:
        """What fitting (and generating for ``n_prompts``) would cost; None when it costs nothing (more)."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        ...

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        ...


def options_for(config_class: type[C], options: Any) -> C:
    """A backend's own config: the fields of ``config_class`` taken by name from the model's options."""
    return config_class(**{f.name: getattr(options, f.name) for f in dataclasses.fields(config_class)})  # type: ignore[arg-type]


def session_seed(seed: int, names: Sequence[str]) -> int:
    """A sampling seed from the model's seed and the prompt alone (not its position in a batch)."""
    digest = hashlib.sha256(json.dumps([seed, list(names)]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def text_array(text: str) -> np.ndarray:
    """A string as a uint8 array (safetensors holds arrays only)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def array_text(array: np.ndarray) -> str:
    return bytes(np.asarray(array, dtype=np.uint8)).decode("utf-8")
