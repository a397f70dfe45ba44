"""LLMSeqPrompt (Boz et al. 2024, §3.2; GenItem in the extended paper): a language model fine-tuned to *name*
the next item, its names mapped back to the catalog. One package:

* :mod:`.prompts`: fine-tuning examples — one per train session (prompt = the names of all but the last item,
  the most recent ``max_prompt_items`` of them; target = the last item's name), a seeded
  ``validation_fraction`` held out for early stopping — and the paper's GenItem chat prompt;
* :mod:`.generator`: the :class:`~.generator.NameGenerator` interface every backend implements;
* :mod:`.local`: ``backend=local`` (offline default): **a small GPT-2 trained from scratch on this dataset's
  sessions, not a pretrained LLM**, or a user's Hugging Face model folder fine-tuned with LoRA;
* :mod:`.openai_backend`: ``backend=openai``, the real fine-tuning API; a paid job starts only with
  ``fit(..., confirm_spending=True)`` (``finetune --yes``, or the app's ticked confirmation);
* :mod:`.mapping`: from sampled names to a top-K list of catalog items.

Recommending: ``n_samples`` names are sampled per session (the paper's best: 20, temperature 0.25, top_p 1)
and mapped to catalog items (exact title matches first, duplicates and hallucinations replaced by their nearest
catalog neighbours in the embedding space). Each session's counts of exact / duplicated / hallucinated names
are the model's generation statistics (``generation_counts``); the evaluation reports their rates. Prompt
items are never recommended (the paper's mapping excludes them), whatever ``exclude_seen`` says; a list is
shorter than K (ending in ``NO_ITEM``) only when fewer catalog items are left outside the prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

from core.common import ConfigError, Progress
from core.config import Options, option
from core.data import Split
from core.models.base import NO_ITEM, Card, Recommender, SessionLike
from core.models.llmseqprompt.generator import Example, NameGenerator, array_text, options_for, text_array
from core.models.llmseqprompt.mapping import MappedSession, NameMapper
from core.models.llmseqprompt.prompts import session_examples, split_examples

if TYPE_CHECKING:
    from core.embeddings import EmbeddingSpec


@dataclass(frozen=True)
class LLMSeqPromptConfig(Options):
    backend: Literal["local", "openai"] = option("local", help="who fine-tunes: this machine, or the OpenAI API")
    # --- fine-tuning data (the paper's GenItem examples)
    max_prompt_items: int = option(10, low=0, help="most recent prompt items named (0 = all; Beauty: median 6)")
    validation_fraction: float = option(0.2, low=0.0, high=1.0, high_open=True, help="held out for early stopping")
    # --- sampling: the paper's best setting
    n_samples: int = option(20, low=1, high=128, help="OpenAI's n: at most 128")
    temperature: float = option(0.25, low=0.0, high=2.0, help="OpenAI's range")
    top_p: float = option(1.0, low=0.0, high=1.0, low_open=True, help="nucleus sampling (1 = off)")
    # --- local backend
    model_folder: str = option("",
                               help="\"\" = GPT-2 trained from scratch (NOT pretrained); else a HF folder, LoRA-tuned")
    vocab_size: int = option(4096, low=258, help="BPE trained on the catalog titles (Beauty: ~16 tokens a title)")
    n_embd: int = option(128, low=1, help="small enough for an epoch over Beauty in minutes on one CPU core")
    n_layer: int = option(2, low=1, help="transformer blocks of the from-scratch GPT-2")
    n_head: int = option(4, low=1, help="its attention heads; n_embd must be a multiple")
    context_tokens: int = option(384, low=32, help="prompt + answer; the oldest names are dropped beyond it")
    epochs: int = option(3, low=1, help="at most (early stop on validation loss); Beauty: ~10 min an epoch")
    patience: int = option(1, low=1, help="epochs without a lower validation loss before stopping")
    batch_size: int = option(32, low=1, help="examples per step")
    learning_rate: float = option(2e-3, low=0.0, low_open=True, help="AdamW, 5% warm-up then cosine to 10%")
    lora_r: int = option(16, low=1, help="LoRA for a user's model folder")
    lora_alpha: int = option(32, low=1, help="LoRA scaling (alpha / r)")
    lora_dropout: float = option(0.05, low=0.0, high=1.0, high_open=True, help="dropout on the LoRA input")
    # --- OpenAI backend
    openai_model: str = option("gpt-4o-mini-2024-07-18", help="or \"gpt-3.5-turbo\"")
    openai_epochs: int = option(0, low=0, high=50, help="0 = OpenAI's automatic choice")
    concurrency: int = option(4, low=1, high=64, help="requests in flight at once")
    max_retries: int = option(5, low=0, help="on 429 / 5xx, with exponential back-off")
    # --- mapping names to the catalog
    embedding_provider: Literal["local", "openai"] = option("local", help="for the item and generated-name vectors")
    embedding_model: str | None = option(None, help="None = the provider's default (local: bundled all-MiniLM-L6-v2)")
    long_titles: Literal["cut", "head_tail"] = option("cut",
                                                      help="past the model's window: cut the end, or keep head+tail")
    seed: int = option(0, low=0, help="training and sampling")

    def check(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"option 'n_embd' ({self.n_embd}) must be a multiple of 'n_head' ({self.n_head})")


class LLMSeqPrompt(Recommender):
    name = "llmseqprompt"
    card = Card("titles", "A language model fine-tuned on sessions writes the next item's name; each name is "
                "mapped to a catalog item.",
                "K − rank of its sampled name", "the language model named it")
    Config = LLMSeqPromptConfig
    stochastic_fit = True

    def __init__(self, config: LLMSeqPromptConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.generator = self._make_generator()
        self.counts: list[dict[str, int]] = []  # per ranked session: how its sampled names mapped
        self._mapper: NameMapper | None = None

    def _make_generator(self) -> NameGenerator:
        if self.config.backend == "openai":
            from core.models.llmseqprompt.openai_backend import OpenAIConfig, OpenAIGenerator

            return OpenAIGenerator(options_for(OpenAIConfig, self.config))
        from core.models.llmseqprompt.local import LocalConfig, local_generator

        return local_generator(options_for(LocalConfig, self.config))

    @property
    def label(self) -> str:
        """What generates the names, honestly (e.g. "GPT-2 ... trained from scratch ... (not a pretrained LLM)")."""
        return self.generator.label

    # ------------------------------------------------------------------------------------ capabilities
    @classmethod
    def text_embedding(cls, config: LLMSeqPromptConfig) -> "EmbeddingSpec":
        from core.embeddings import EmbeddingSpec

        return EmbeddingSpec(config.embedding_provider, config.embedding_model or None, config.long_titles)

    def generation_counts(self) -> list[dict[str, int]]:
        return self.counts

    def spending_estimate(self, split: Split) -> str | None:
        train, validation = self.examples(split)
        return self.generator.spending_estimate(train, validation, split.n_test)

    # ------------------------------------------------------------------------------------ fitting
    def examples(self, split: Split) -> tuple[list[Example], list[Example]]:
        """(train, validation) fine-tuning pairs of (prompt names, target name)."""
        titles = split.catalog.titles
        examples = session_examples(split.train, split.catalog, self.config.max_prompt_items)
        train, validation = split_examples(examples, self.config.validation_fraction, self.config.seed)

        def named(part):
            return [([titles[i] for i in e.prompt], titles[e.target]) for e in part]

        return named(train), named(validation)

    def fit(self, split: Split, progress: Progress | None = None, confirm_spending: bool = False) -> "LLMSeqPrompt":
        from core.embeddings import item_embeddings

        train, validation = self.examples(split)
        self.generator.fit(train, validation, split.catalog.titles, progress, confirm_spending=confirm_spending)
        self.titles = list(split.catalog.titles)
        self.popularity = split.train_popularity.astype(np.float64)
        self.item_vectors = item_embeddings(split.catalog, self.text_embedding(self.config), progress)
        self.n_items = split.catalog.n_items
        self._mapper = None
        return self

    # ------------------------------------------------------------------------------------ recommending
    @property
    def mapper(self) -> NameMapper:
        if self._mapper is None:
            from core.embeddings import encode_texts

            spec = self.text_embedding(self.config)
            self._mapper = NameMapper(self.titles, self.item_vectors, self.popularity,
                                      encoder=lambda texts: encode_texts(texts, spec))
        return self._mapper

    def prompt_names(self, session: np.ndarray) -> list[str]:
        recent = session[-self.config.max_prompt_items:] if self.config.max_prompt_items > 0 else session
        return [self.titles[i] for i in recent if self.titles[i]]

    def generate(self, sessions: Sequence[SessionLike], k: int,
                 progress: Progress | None = None) -> list[MappedSession]:
        """Sampled names, their kinds and the mapped top-``k`` list for each session (counted)."""
        self._check_fitted()
        arrays = self._as_sessions(sessions)
        samples = self.generator.sample([self.prompt_names(s) for s in arrays], progress)
        mapped = self.mapper.map(samples, arrays, min(k, self.n_items))
        self.counts.extend(m.counts for m in mapped)
        return mapped

    def recommend(self, sessions: Sequence[SessionLike], k: int, exclude_seen: bool = True,
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

    # ------------------------------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        return {**self.generator.state(), "titles_json": text_array(json.dumps(self.titles, ensure_ascii=False)),
                "popularity": self.popularity, "item_vectors": self.item_vectors}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.generator.set_state(arrays)
        self.titles = json.loads(array_text(arrays["titles_json"]))
        self.popularity = np.asarray(arrays["popularity"], dtype=np.float64)
        self.item_vectors = np.asarray(arrays["item_vectors"], dtype=np.float32)
        self._mapper = None
