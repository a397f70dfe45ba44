"""LLMSeqPrompt (Boz et al. 2024, §3.2; the extended paper's §4): a language model fine-tuned on sessions'
item *names*, its answers mapped back to the catalog. Four tasks (``task``, :mod:`.tasks`): ``genitem``
(name the next item; 20 sampled names), ``genlist`` (write a ranked list of 20 names), ``classify`` (pick 20
of 200 item clusters, expanded to items) and ``rank`` (re-rank LLMSeqSim's top-20). The list tasks read
LLMSeqSim (the dataset's default config) as a part: ``genlist`` and ``rank`` train on its lists, ``rank``
re-ranks them, ``classify`` orders each cluster's items by its similarity to the session. One package:

* :mod:`.prompts`: fine-tuning examples — one per train session (prompt = the names of all but the last item,
  the most recent ``max_prompt_items`` of them; target = the last item's name), a seeded
  ``validation_fraction`` held out for early stopping — and the paper's GenItem chat prompt;
* :mod:`.generator`: the :class:`~.generator.NameGenerator` interface every backend implements;
* :mod:`.local`: ``backend=local`` (offline default): **a small GPT-2 trained from scratch on this dataset's
  sessions, not a pretrained LLM**, or a user's Hugging Face model folder fine-tuned with LoRA;
* :mod:`.openai_backend`: ``backend=openai``, the real fine-tuning API; a paid job starts only with
  ``fit(..., confirm_spending=True)`` (``finetune --yes``, or the app's ticked confirmation);
* :mod:`.tasks`: the four tasks' prompts, training answers, the list parser, Classify's clusters;
* :mod:`.mapping`: from generated names to a top-K list of catalog items (shared by every task).

Recommending (GenItem): ``n_samples`` names are sampled per session (the paper's best: 20, temperature 0.25, top_p 1)
and mapped to catalog items (exact title matches first, duplicates and hallucinations replaced by their nearest
catalog neighbours in the embedding space). Each session's counts of exact / duplicated / hallucinated names
are the model's generation statistics (``generation_counts``), with each session's answers and how many of
them parsed only with a fallback or not at all; the evaluation reports their rates. Prompt items are never
recommended (the paper's mapping excludes them), whatever ``exclude_seen`` says; a list is
shorter than K (ending in ``NO_ITEM``) only when fewer catalog items are left outside the prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from core.common import ConfigError, Progress
from core.config import Options, option
from core.data import Split
from core.models.base import NO_ITEM, Card, Recommender, SessionLike
from core.models.llmseqprompt.generator import NameGenerator, array_text, options_for, session_seed, text_array
from core.models.llmseqprompt.mapping import MappedSession, NameMapper
from core.models.llmseqprompt.prompts import Example as SessionExample
from core.models.llmseqprompt.prompts import session_examples, split_examples
from core.models.llmseqprompt.tasks import (
    LIST_LENGTH,
    N_CLUSTERS,
    Clusters,
    Example,
    Prompt,
    Task,
    expand_clusters,
    genlist_answer,
    rank_answer,
    rank_candidates,
)

if TYPE_CHECKING:
    from core.embeddings import EmbeddingSpec


@dataclass(frozen=True)
class LLMSeqPromptConfig(Options):
    backend: Literal["local", "openai"] = option("local", help="who fine-tunes: this machine, or the OpenAI API")
    task: Literal["genitem", "genlist", "classify", "rank"] = option(
        "genitem", help="name the next item; write a list of 20; pick 20 of 200 clusters; re-rank LLMSeqSim's 20",
        keyed=False)
    # --- fine-tuning data (the paper's GenItem examples)
    max_prompt_items: int = option(10, low=0, help="most recent prompt items named (0 = all; Beauty: median 6)")
    validation_fraction: float = option(0.2, low=0.0, high=1.0, high_open=True, help="held out for early stopping")
    rank_decoding: Literal["generate", "score"] = option(
        "generate", help="rank: the model writes the ranked list (the paper's), or, with a local model, the "
                         "candidates are ordered by its probability of naming each first (nothing generated)",
        keyed=False)
    max_train_examples: int = option(0, low=0, help="fine-tune on a seeded sample of at most this many examples "
                                                    "(0 = all): a quicker local run, a cheaper OpenAI job",
                                     keyed=False)
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
    context_tokens: int = option(384, low=32, help="prompt + answer; the oldest names are dropped beyond it (the "
                                                  "list tasks take at least 1,024 tokens, rank 1,280)")
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
        if self.rank_decoding == "score" and self.task != "rank":
            raise ConfigError(f"option rank_decoding=\"score\" is for task=\"rank\" (got task=\"{self.task}\")")
        if self.rank_decoding == "score" and self.backend != "local":
            raise ConfigError("option rank_decoding=\"score\" needs the local backend: OpenAI's API does not score "
                              "given answers")
        if self.n_embd % self.n_head:
            raise ConfigError(f"option 'n_embd' ({self.n_embd}) must be a multiple of 'n_head' ({self.n_head})")


class LLMSeqPrompt(Recommender):
    name = "llmseqprompt"
    card = Card("titles", "A language model fine-tuned on sessions writes the next item's name (or a list of "
                "names, clusters, or LLMSeqSim's candidates re-ranked); each name is mapped to a catalog item.",
                "K − rank in its list", "the language model named it")
    Config = LLMSeqPromptConfig
    stochastic_fit = True

    def __init__(self, config: LLMSeqPromptConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.task = Task(self.config.task)
        self.generator = self._make_generator()
        self.counts: list[dict[str, int]] = []  # per ranked session: how its names mapped and its answers parsed
        self.similar: Recommender | None = None  # the list tasks' LLMSeqSim part
        self.clusters: Clusters | None = None  # classify's
        self._sources: list[list[str]] = []
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

    @classmethod
    def part_configs(cls, config: Any, dataset: str | None = None) -> dict[str, tuple[str, Any]]:
        """The list tasks' LLMSeqSim (``dataset``'s default config) as the part ``similar``; none for GenItem."""
        from core.models.hybrid import part_config

        return {} if config.task == "genitem" else {"similar": part_config("llmseqsim", dataset)}

    def attach(self, role: str, model: Recommender) -> None:
        self.similar = model

    def generation_counts(self) -> list[dict[str, int]]:
        return self.counts

    def pick_sources(self) -> list[list[str]]:
        return self._sources

    def spending_estimate(self, split: Split) -> str | None:
        if self.config.backend == "local":
            return None  # runs on this machine: nothing to estimate (and no examples to build for it)
        train, validation = self.examples(split)
        return self.generator.spending_estimate(train, validation, split.n_test)

    # ------------------------------------------------------------------------------------ fitting
    def examples(self, split: Split, progress: Progress | None = None) -> tuple[list[Example], list[Example]]:
        """(train, validation) fine-tuning pairs of (prompt, answer names) for the task (:mod:`.tasks`); fits
        what the task reads besides the names first (:meth:`_prepare`)."""
        examples = session_examples(split.train, split.catalog, self.config.max_prompt_items)
        train, validation = split_examples(examples, self.config.validation_fraction, self.config.seed)
        if 0 < self.config.max_train_examples < len(train):
            keep = np.random.default_rng(self.config.seed).permutation(len(train))[:self.config.max_train_examples]
            train = [train[i] for i in sorted(keep)]
        self._prepare(split, progress)
        return self._task_examples(train, split.catalog.titles), self._task_examples(validation, split.catalog.titles)

    def _prepare(self, split: Split, progress: Progress | None = None) -> None:
        """What the task reads besides the names: the item vectors, LLMSeqSim (fitted here unless attached by
        the store), classify's clusters."""
        from core.embeddings import item_embeddings
        from core.models import model_class

        self.titles = list(split.catalog.titles)
        self.popularity = split.train_popularity.astype(np.float64)
        self.item_vectors = item_embeddings(split.catalog, self.text_embedding(self.config), progress)
        self.n_items = split.catalog.n_items
        self._mapper = None
        for role, (name, config) in self.part_configs(self.config).items():
            if self.similar is None:
                self.attach(role, model_class(name)(config).fit(split, progress=progress))
        if self.task.name == "classify" and self.clusters is None:
            titled = np.array([bool(t) for t in self.titles], dtype=bool)
            if not titled.any():
                raise ConfigError("llmseqprompt: task=\"classify\" names its clusters by item titles, and no item of "
                                  "this catalog has one")
            self.clusters = Clusters.fit(self.item_vectors, self.popularity, titled, N_CLUSTERS, self.config.seed)

    def _names(self, items: Sequence[int] | np.ndarray) -> tuple[str, ...]:
        return tuple(self.titles[int(i)] for i in items)

    def _task_examples(self, part: Sequence[SessionExample], titles: Sequence[str]) -> list[Example]:
        task = self.task.name
        if task == "genitem":
            return [(Prompt(self._names(e.prompt)), (titles[e.target],)) for e in part]
        if task == "classify":
            assert self.clusters is not None
            clusters = self.clusters
            representatives = self._names(clusters.representatives)
            return [(Prompt(self._names(e.prompt), representatives),
                     self._names(clusters.representatives[clusters.nearest(self.item_vectors[e.target])]))
                    for e in part]
        similar = self._similar([np.array(e.prompt, dtype=np.int64) for e in part], LIST_LENGTH)
        out: list[Example] = []
        for e, top in zip(part, similar):
            names = self._names(e.prompt)
            if task == "genlist":
                out.append((Prompt(names), self._names(genlist_answer(e.target, top))))
                continue
            candidates = rank_candidates(e.target, top)
            shuffled = self._shuffled(candidates, names)
            out.append((Prompt(names, self._names(shuffled)), self._names(rank_answer(e.target, candidates))))
        return out

    def _shuffled(self, candidates: Sequence[int], names: Sequence[str]) -> list[int]:
        """Rank's candidates in the prompt: a seeded shuffle from the session's names (never LLMSeqSim's order,
        which would give the answer away)."""
        order = np.random.default_rng(session_seed(self.config.seed, list(names))).permutation(len(candidates))
        return [int(candidates[i]) for i in order]

    def _similar(self, sessions: Sequence[np.ndarray], k: int) -> list[list[int]]:
        """LLMSeqSim's top-``k`` titled items for each session (an untitled item cannot be named), prompt items
        excluded."""
        assert self.similar is not None
        if not sessions:
            return []
        untitled = sum(1 for t in self.titles if not t)
        items, _ = self.similar.recommend(sessions, min(k + untitled, self.n_items), exclude_seen=True)
        return [[int(i) for i in row if i != NO_ITEM and self.titles[i]][:k] for row in items]

    def fit(self, split: Split, progress: Progress | None = None, confirm_spending: bool = False) -> "LLMSeqPrompt":
        train, validation = self.examples(split, progress)
        self.generator.fit(train, validation, split.catalog.titles, progress, confirm_spending=confirm_spending)
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
        """The answers, their names' kinds and the mapped top-``k`` list for each session (counted); the
        source of each pick in ``pick_sources``."""
        self._check_fitted()
        arrays = self._as_sessions(sessions)
        k = min(k, self.n_items)
        if not self.task.is_list:
            prompts = [Prompt(tuple(self.prompt_names(s))) for s in arrays]
            answers = self.generator.sample(prompts, progress)
            samples = [[next(iter(self.task.parse(text).names), "") for text in texts] for texts in answers]
            mapped = self.mapper.map(samples, arrays, k)
            self._sources = []
            for m in mapped:
                self.counts.append({**m.counts, "answers": len(m.names),
                                    "parse_fallback": 0, "parse_failed": sum(1 for n in m.names if not n)})
            return mapped
        similar = self._similar(arrays, max(k, LIST_LENGTH)) if self.task.name == "rank" else []
        prompts = [self._prompt(s, similar[i] if similar else ()) for i, s in enumerate(arrays)]
        if self.task.name == "rank" and self.config.rank_decoding == "score":
            return self._rank_by_score(prompts, similar, k, progress)
        parsed = [self.task.parse(texts[0] if texts else "") for texts in self.generator.sample(prompts, progress)]
        names = [p.names for p in parsed]
        if self.task.name == "genlist":
            mapped = self.mapper.map_lists(names, arrays, k)
            self._sources = [self._genlist_sources(m) for m in mapped]
        elif self.task.name == "rank":
            mapped = self.mapper.map_lists(names, arrays, LIST_LENGTH,
                                           pools=[np.array(s[:LIST_LENGTH], dtype=np.int64) for s in similar],
                                           fill=False)
            self._sources = [self._rerank(m, s, k) for m, s in zip(mapped, similar)]
        else:
            mapped, self._sources = self._expand(names, arrays, k)
        for m, p in zip(mapped, parsed):
            self.counts.append({**m.counts, "answers": 1, "parse_fallback": int(p.outcome == "fallback"),
                                "parse_failed": int(p.outcome == "failed")})
        return mapped

    def _rank_by_score(self, prompts: list[Prompt], similar: list[list[int]], k: int,
                       progress: Progress | None) -> list[MappedSession]:
        """Rank with ``rank_decoding="score"``: LLMSeqSim's top-20 ordered by the local model's probability of
        naming each first (ties: LLMSeqSim's order), then LLMSeqSim's list past the 20th."""
        from core.models.llmseqprompt.local import LocalLM

        assert isinstance(self.generator, LocalLM)
        candidates = [s[:LIST_LENGTH] for s in similar]
        scores = self.generator.first_line_scores(prompts, [self._names(c) for c in candidates], progress)
        mapped, self._sources = [], []
        for top, more, score in zip(candidates, similar, scores):
            order = sorted(range(len(top)), key=lambda j: (-score[j], j))
            items = ([top[j] for j in order] + more[LIST_LENGTH:])[:k]
            mapped.append(MappedSession(names=[], kinds=[], items=items))  # nothing generated: nothing counted
            position = {item: p for p, item in enumerate(more, start=1)}
            self._sources.append([f"LLMSeqSim's #{position[item]}, the model's #{rank} by probability"
                                  if rank <= len(top) else f"LLMSeqSim's #{position[item]}"
                                  for rank, item in enumerate(items, start=1)])
        return mapped

    def _prompt(self, session: np.ndarray, similar: Sequence[int]) -> Prompt:
        names = tuple(self.prompt_names(session))
        if self.task.name == "rank":
            return Prompt(names, self._names(self._shuffled(similar[:LIST_LENGTH], names)))
        if self.task.name == "classify":
            assert self.clusters is not None
            return Prompt(names, self._names(self.clusters.representatives))
        return Prompt(names)

    def _genlist_sources(self, mapped: MappedSession) -> list[str]:
        """Where each GenList pick came from (the app's "why" reads "from ..."): the line of the model's answer
        that named it, the made-up name it replaced, or the similarity fill."""
        from core.models.llmseqprompt.prompts import normalise_title

        origin: dict[int, str] = {}
        for line, (name, kind) in enumerate(zip(mapped.names, mapped.kinds), start=1):
            if kind == "exact":
                origin[self.mapper.lookup[normalise_title(name)]] = f"the model's list, line {line}"
        for position, item in mapped.replaced_by.items():
            origin[item] = f"the nearest title to a name the model made up (line {position + 1})"
        return [origin.get(item, "similarity to the names the model wrote") for item in mapped.items]

    def _rerank(self, mapped: MappedSession, similar: list[int], k: int) -> list[str]:
        """Rank: the candidates the model named (in its order), then the others in LLMSeqSim's order, then
        LLMSeqSim's list past the 20th; ``mapped.items`` becomes that list. Returns each pick's source."""
        named = list(mapped.items)
        items = named + [i for i in similar if i not in set(named)]
        mapped.items = items[:k]
        position = {item: p for p, item in enumerate(similar, start=1)}
        return [f"LLMSeqSim's #{position[item]}, the model's #{rank}" if rank <= len(named)
                else f"LLMSeqSim's #{position[item]}, not named by the model"
                for rank, item in enumerate(mapped.items, start=1)]

    def _expand(self, names: list[list[str]], sessions: list[np.ndarray],
                k: int) -> tuple[list[MappedSession], list[list[str]]]:
        """Classify: names -> representatives (exact, else the nearest one) -> clusters -> items, round robin
        by LLMSeqSim's similarity to the session within each cluster (``tasks.expand_clusters``)."""
        assert self.clusters is not None and self.similar is not None
        clusters = self.clusters
        pool = clusters.representatives
        # A representative in the prompt still names its cluster: map against an empty prompt.
        mapped = self.mapper.map_lists(names, [np.zeros(0, np.int64)] * len(names), LIST_LENGTH,
                                       pools=[pool] * len(names), fill=False)
        scores = np.asarray(self.similar.score(sessions), dtype=np.float64) if sessions else np.zeros((0, 0))
        cluster_index = {int(item): c for c, item in enumerate(pool)}
        sources = []
        for row, (m, session) in enumerate(zip(mapped, sessions)):
            chosen = [cluster_index[item] for item in m.items]
            blocked = np.zeros(self.n_items, dtype=bool)
            blocked[session] = True
            items, origin = expand_clusters(chosen, clusters.cluster_of, scores[row], blocked, k)
            m.items = items
            sources.append([f"the cluster of \u201c{self.titles[pool[chosen[o]]]}\u201d, the model's #{o + 1}"
                            if o >= 0 else "LLMSeqSim's similarity (past the chosen clusters)" for o in origin])
        return mapped, sources

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
        arrays = {**self.generator.state(), "titles_json": text_array(json.dumps(self.titles, ensure_ascii=False)),
                  "popularity": self.popularity, "item_vectors": self.item_vectors}
        if self.similar is not None:
            from core.config import config_dict

            arrays["similar_json"] = text_array(json.dumps({"model": self.similar.name, "n_items": self.similar.n_items,
                                                            "config": config_dict(self.similar.config)}))
            arrays.update({f"similar.{key}": value for key, value in self.similar.state().items()})
        if self.clusters is not None:
            c = self.clusters
            arrays.update({"clusters.centroids": c.centroids, "clusters.cluster_of": c.cluster_of,
                           "clusters.representatives": c.representatives})
        return arrays

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        from core.models import model_class

        self.generator.set_state(arrays)
        self.titles = json.loads(array_text(arrays["titles_json"]))
        self.popularity = np.asarray(arrays["popularity"], dtype=np.float64)
        self.item_vectors = np.asarray(arrays["item_vectors"], dtype=np.float32)
        if "similar_json" in arrays:
            info = json.loads(array_text(arrays["similar_json"]))
            cls = model_class(info["model"])
            self.similar = cls(cls.Config(**info["config"]))
            self.similar.n_items = int(info["n_items"])
            self.similar.set_state({key[len("similar."):]: value for key, value in arrays.items()
                                    if key.startswith("similar.")})
        if "clusters.centroids" in arrays:
            self.clusters = Clusters(*(np.asarray(arrays[f"clusters.{key}"])
                                       for key in ("centroids", "cluster_of", "representatives")))
        self._mapper = None
