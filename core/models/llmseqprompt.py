"""LLMSeqPrompt (Boz et al. 2024, §3.2; GenItem in the extended paper): a language model fine-tuned to *name*
the next item, its names mapped back to the catalog.

Fine-tuning data: one example per train session (prompt = the names of all but the last item, the most
recent ``max_prompt_items`` of them; target = the last item's name), a seeded ``validation_fraction`` held
out for early stopping (:mod:`core.llm.prompts`). Backends: ``local`` (offline default; by default **a small
GPT-2 trained from scratch on this dataset's sessions, not a pretrained LLM**, or a user's Hugging Face
model folder fine-tuned with LoRA — :mod:`core.llm.local_lm`) and ``openai`` (the real fine-tuning API —
:mod:`core.llm.openai_finetune`; a paid job starts only once ``spending_confirmed`` is set, as
``finetune --yes`` does).

Recommending: ``n_samples`` names are sampled per session (the paper's best: 20, temperature 0.25, top_p 1)
and mapped to catalog items (:mod:`core.llm.mapping`: exact title matches first, duplicates and
hallucinations replaced by their nearest catalog neighbours in the embedding space). Each session's counts
of exact / duplicated / hallucinated names are kept in ``generation_log``; the evaluation reports the rates.
Prompt items are never recommended (the paper's mapping excludes them), whatever ``exclude_seen`` says; a list
is shorter than K (ending in ``NO_ITEM``) only when fewer catalog items are left outside the prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from core.common import ConfigError
from core.config import Options, option
from core.data import Split
from core.llm.mapping import MappedSession, NameMapper
from core.llm.prompts import hold_out, session_examples
from core.common import Progress
from core.models.base import NO_ITEM, Recommender


@dataclass(frozen=True)
class LLMSeqPromptConfig(Options):
    backend: Literal["local", "openai"] = "local"
    # --- fine-tuning data (the paper's GenItem examples)
    max_prompt_items: int = option(10, low=0)  # most recent prompt items named (0 = all; Beauty: median 6)
    validation_fraction: float = option(0.2, low=0.0, high=1.0, high_open=True)  # held out (seeded) for early stopping
    # --- sampling: the paper's best setting
    n_samples: int = option(20, low=1, high=128)  # OpenAI's n: at most 128
    temperature: float = option(0.25, low=0.0, high=2.0)  # OpenAI's range
    top_p: float = option(1.0, low=0.0, high=1.0, low_open=True)
    # --- local backend
    model_folder: str = ""  # "" = GPT-2 trained from scratch (NOT pretrained); else a HF folder, LoRA-tuned
    vocab_size: int = option(4096, low=258)  # BPE trained on the catalog titles (Beauty: ~16 tokens a title)
    n_embd: int = option(128, low=1)  # small enough for an epoch over Beauty in minutes on one CPU core
    n_layer: int = option(2, low=1)
    n_head: int = option(4, low=1)
    context_tokens: int = option(384, low=32)  # prompt + answer; the oldest names are dropped beyond it
    epochs: int = option(3, low=1)  # at most (early stopping on the validation loss); ~10 min an epoch on Beauty, 1 busy core
    patience: int = option(1, low=1)
    batch_size: int = option(32, low=1)
    learning_rate: float = option(2e-3, low=0.0, low_open=True)  # AdamW, 5% warm-up then cosine to 10%
    lora_r: int = option(16, low=1)  # LoRA for a user's model folder
    lora_alpha: int = option(32, low=1)
    lora_dropout: float = option(0.05, low=0.0, high=1.0, high_open=True)
    # --- OpenAI backend
    openai_model: str = "gpt-4o-mini-2024-07-18"  # or "gpt-3.5-turbo"
    openai_epochs: int = option(0, low=0, high=50)  # 0 = OpenAI's automatic choice
    concurrency: int = option(4, low=1, high=64)  # requests in flight at once
    max_retries: int = option(5, low=0)  # on 429 / 5xx, with exponential back-off
    # --- mapping names to the catalog
    embedding_provider: Literal["local", "openai"] = "local"  # core.embeddings provider for the item and name vectors
    embedding_model: str | None = None  # None = the provider's default (local: bundled all-MiniLM-L6-v2)
    long_titles: Literal["cut", "head_tail"] = "cut"  # past the model's window: cut the end, or keep head+tail
    seed: int = option(0, low=0)

    def check(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"option 'n_embd' ({self.n_embd}) must be a multiple of 'n_head' ({self.n_head})")


class LLMSeqPrompt(Recommender):
    name = "llmseqprompt"
    Config = LLMSeqPromptConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.backend = self._make_backend()
        self.generation_log: list[MappedSession] = []
        self.spending_confirmed = False  # OpenAI only: set after the user confirmed the cost (`finetune --yes`)
        self._mapper: NameMapper | None = None

    def _make_backend(self):
        if self.config.backend == "openai":
            from core.llm.openai_finetune import OpenAIBackend

            return OpenAIBackend(self.config)
        from core.llm.local_lm import LocalLM

        return LocalLM(self.config)

    @property
    def label(self) -> str:
        """What generates the names, honestly (e.g. "GPT-2 ... trained from scratch ... (not a pretrained LLM)")."""
        return self.backend.label

    @classmethod
    def text_embedding(cls, config: LLMSeqPromptConfig) -> Any:
        from core.embeddings import EmbeddingSpec

        return EmbeddingSpec(config.embedding_provider, config.embedding_model or None, config.long_titles)

    def _embedding_spec(self):
        return self.text_embedding(self.config)

    # ------------------------------------------------------------------------------------ fitting
    def examples(self, split: Split) -> tuple[list[tuple[list[str], str]], list[tuple[list[str], str]]]:
        """(train, validation) fine-tuning pairs of (prompt names, target name)."""
        titles = split.catalog.titles
        examples = session_examples(split.train, split.catalog, self.config.max_prompt_items)
        train, validation = hold_out(examples, self.config.validation_fraction, self.config.seed)

        def named(part):
            return [([titles[i] for i in e.prompt], titles[e.target]) for e in part]

        return named(train), named(validation)

    def fit(self, split: Split, progress: Progress | None = None) -> "LLMSeqPrompt":
        from core.embeddings import item_embeddings

        train, validation = self.examples(split)
        if self.config.backend == "openai":
            self.backend.fit(train, validation, progress, spending_confirmed=self.spending_confirmed)
        else:
            self.backend.fit(train, validation, split.catalog.titles, progress)
        self.titles = list(split.catalog.titles)
        self.popularity = split.train_popularity.astype(np.float64)
        self.item_vectors = item_embeddings(split.catalog, self._embedding_spec(), progress)
        self.n_items = split.catalog.n_items
        self._mapper = None
        return self

    # ------------------------------------------------------------------------------------ recommending
    @property
    def mapper(self) -> NameMapper:
        if self._mapper is None:
            from core.embeddings import encode_texts

            spec = self._embedding_spec()
            self._mapper = NameMapper(self.titles, self.item_vectors, self.popularity,
                                      encoder=lambda texts: encode_texts(texts, spec))
        return self._mapper

    def prompt_names(self, session: np.ndarray) -> list[str]:
        recent = session[-self.config.max_prompt_items:] if self.config.max_prompt_items > 0 else session
        return [self.titles[i] for i in recent if self.titles[i]]

    def generate(self, sessions: Sequence[Sequence[int]], k: int,
                 progress: Progress | None = None) -> list[MappedSession]:
        """Sampled names, their kinds and the mapped top-``k`` list for each session (also logged)."""
        self._check_fitted()
        sessions = self._as_sessions(sessions)
        samples = self.backend.sample([self.prompt_names(s) for s in sessions], progress)
        mapped = self.mapper.map(samples, sessions, min(k, self.n_items))
        self.generation_log.extend(mapped)
        return mapped

    def recommend(self, sessions: Sequence[Sequence[int]], k: int, exclude_seen: bool = True,
                  batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        mapped = self.generate(sessions, k)
        k = min(k, self.n_items)
        items = np.full((len(mapped), k), NO_ITEM, dtype=np.int64)
        scores = np.full((len(mapped), k), -np.inf, dtype=np.float32)
        for row, entry in enumerate(mapped):
            items[row, :len(entry.items)] = entry.items
            scores[row, :len(entry.items)] = np.arange(k, k - len(entry.items), -1)  # rank-based, best first
        return items, scores

    def generation_report(self, start: int = 0) -> dict[str, Any]:
        """Rates over the sessions logged since ``start``: the share of sampled names that were exact
        catalog titles, duplicates, and hallucinations; plus the per-session counts."""
        logged = self.generation_log[start:]
        counts = {kind: [m.counts[kind] for m in logged] for kind in ("exact", "duplicated", "hallucinated")}
        total = sum(len(m.names) for m in logged)
        rates = {f"{kind}_rate": (sum(values) / total if total else 0.0) for kind, values in counts.items()}
        return {"rates": {"exact_rate": rates["exact_rate"], "duplicate_rate": rates["duplicated_rate"],
                          "hallucination_rate": rates["hallucinated_rate"]},
                "per_session": counts, "model": self.label}

    # ------------------------------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        titles = json.dumps(self.titles, ensure_ascii=False).encode("utf-8")
        return {**self.backend.state(), "titles_json": np.frombuffer(titles, dtype=np.uint8).copy(),
                "popularity": self.popularity, "item_vectors": self.item_vectors}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.backend.set_state(arrays)
        self.titles = json.loads(bytes(arrays["titles_json"]).decode("utf-8"))
        self.popularity = np.asarray(arrays["popularity"], dtype=np.float64)
        self.item_vectors = np.asarray(arrays["item_vectors"], dtype=np.float32)
        self._mapper = None
