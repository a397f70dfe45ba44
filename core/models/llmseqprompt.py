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
Prompt items are never recommended (the paper's mapping excludes them), whatever ``exclude_seen`` says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from core.data import Split
from core.llm.mapping import MappedSession, NameMapper
from core.llm.prompts import hold_out, session_examples
from core.models.base import Progress, Recommender


@dataclass(frozen=True)
class LLMSeqPromptConfig:
    backend: Literal["local", "openai"] = "local"
    # --- fine-tuning data (the paper's GenItem examples)
    max_prompt_items: int = 10  # most recent prompt items named (Beauty prompts: median 6, 99th pct. 71)
    validation_fraction: float = 0.2  # held out (seeded) for early stopping
    # --- sampling: the paper's best setting
    n_samples: int = 20
    temperature: float = 0.25
    top_p: float = 1.0
    # --- local backend
    model_folder: str = ""  # "" = GPT-2 trained from scratch (NOT pretrained); else a HF folder, LoRA-tuned
    vocab_size: int = 4096  # BPE trained on the catalog titles (Beauty: ~16 tokens a title)
    n_embd: int = 128  # small enough for an epoch over Beauty in minutes on one CPU core
    n_layer: int = 2
    n_head: int = 4
    context_tokens: int = 384  # prompt + answer; the oldest names are dropped beyond it
    epochs: int = 3  # at most (early stopping on the validation loss); ~10 min an epoch on Beauty, 1 busy core
    patience: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-3  # AdamW, 5% warm-up then cosine to 10%
    lora_r: int = 16  # LoRA for a user's model folder
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # --- OpenAI backend
    openai_model: str = "gpt-4o-mini-2024-07-18"  # or "gpt-3.5-turbo"
    openai_epochs: int = 0  # 0 = OpenAI's automatic choice
    concurrency: int = 4  # requests in flight at once
    max_retries: int = 5  # on 429 / 5xx, with exponential back-off
    # --- mapping names to the catalog
    embedding_provider: str = "local"  # core.embeddings provider for the item and name vectors
    embedding_model: str = ""  # "" = the provider's default (local: bundled all-MiniLM-L6-v2)
    seed: int = 0


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

    def _embedding_spec(self):
        from core.embeddings import EmbeddingSpec

        return EmbeddingSpec(provider=self.config.embedding_provider, model=self.config.embedding_model or None)

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
        items = np.array([m.items for m in mapped], dtype=np.int64).reshape(len(mapped), k)
        scores = np.tile(np.arange(k, 0, -1, dtype=np.float32), (len(mapped), 1))  # rank-based, best first
        for row, session in enumerate(self._as_sessions(sessions)):
            scores[row, np.isin(items[row], session)] = -np.inf  # prompt items, only when nothing else is left
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
