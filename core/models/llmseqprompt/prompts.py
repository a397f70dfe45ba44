"""Training examples for LLMSeqPrompt and the paper's GenItem chat prompt.

From each train session ``i1..in``: prompt = the names of ``i1..i(n-1)`` (cut to the most recent
``max_prompt_items``), target = the name of ``in``. Sessions holding an untitled item are skipped (a model
cannot learn to name what has no name). A seeded 20% of the examples is held out for validation
(:func:`split_examples`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.data import Catalog

# The paper's GenItem prompt (Boz et al. 2024, extended version), verbatim.
SYSTEM_PROMPT = ("Provide a unique item recommendation that is complementary to the user's item list. "
                 "Ensure the recommendation is from items included in the data you are fine-tuned with. "
                 "List only the item name.")
USER_PREFIX = "The user's item list:\n"

_SPACES = re.compile(r"\s+")


def normalise_title(name: str) -> str:
    """The one normalisation applied to catalog titles and generated names before an exact match:
    Unicode NFKC, case folding, surrounding quotes/spaces/list markers removed, runs of spaces collapsed."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = _SPACES.sub(" ", text).strip()
    text = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", text)  # "1. name", "- name": a model listing its answer
    return text.strip(" \"'`")


@dataclass(frozen=True)
class Example:
    prompt: tuple[int, ...]  # item indices, oldest first
    target: int


def session_examples(sessions: Sequence[np.ndarray], catalog: Catalog, max_prompt_items: int) -> list[Example]:
    """One example per session of 2+ items whose every item has a title."""
    titled = np.array([bool(t) for t in catalog.titles], dtype=bool)
    examples = []
    for session in sessions:
        if len(session) < 2 or not titled[session].all():
            continue
        prompt = session[:-1][-max_prompt_items:] if max_prompt_items > 0 else session[:-1]
        examples.append(Example(tuple(int(i) for i in prompt), int(session[-1])))
    return examples


def split_examples(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded split into (train, validation); validation gets ``round(fraction * n)`` examples, at least one
    when there are two or more examples and ``fraction > 0``."""
    n_val = int(round(fraction * len(examples)))
    if fraction > 0 and len(examples) >= 2:
        n_val = min(max(n_val, 1), len(examples) - 1)
    order = np.random.default_rng(seed).permutation(len(examples))
    val = set(order[:n_val].tolist())
    return ([e for i, e in enumerate(examples) if i not in val], [e for i, e in enumerate(examples) if i in val])


def user_message(names: Sequence[str]) -> str:
    return USER_PREFIX + "\n".join(names)


def chat_messages(names: Sequence[str], target: str | None = None) -> list[dict[str, str]]:
    """The chat-format record of one example (OpenAI fine-tuning JSONL, and a local model's chat template)."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_message(names)}]
    if target is not None:
        messages.append({"role": "assistant", "content": target})
    return messages
