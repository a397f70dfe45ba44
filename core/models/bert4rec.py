"""BERT4Rec (Sun et al. 2019): a bidirectional transformer trained to fill in masked items (cloze task).

Post-LN transformer blocks (the original BERT layout, the authors' ``FDRN``), learned positions counted from
the session's end, LayerNorm + dropout on the embeddings. In the authors' TrainGenerator an epoch shows
every train session once with only its last item masked (the next-item task) and ``masked_copies`` more
times with each item masked with probability ``mask_probability``, masks drawn anew every epoch. The
loss is full-softmax cross-entropy at the masked positions, the output tied to the item table.
To recommend, a mask token is appended to the session and its position is scored.

Training runs in **passes**, not the authors' 11-copy epochs: a pass shows every train session once, with
probability ``1 / (1 + masked_copies)`` as its next-item copy (last item masked) and otherwise as a randomly
masked copy — over 11 passes the same mixture of examples as one authors' epoch, but early stopping checks
after every pass, so ``patience`` and ``max_epochs`` count passes and a stop never waits out 11 of them.
``llm2bert4rec`` initialises the item table from the titles' LLM embeddings (LLM2BERT4Rec, Boz et al. 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Sequence

import numpy as np
import torch
from torch import nn

from core.config import Space, between, one_of, option
from core.models.base import Card
from core.models.sequential import (
    SequentialNetwork,
    SequentialRecommender,
    TiedOutput,
    TransformerBlock,
    TransformerConfig,
    attention_mask,
    batch_rows,
    init_item_table,
    pad_batch,
    right_aligned_positions,
    target_weights,
)

IGNORE = -100  # cross_entropy's ignore_index: positions that are not masked


@dataclass(frozen=True)
class BERT4RecConfig(TransformerConfig):
    # The paper's tuned values for Beauty (Boz et al. 2024, appendix).
    embedding_dim: int = 192
    heads: int = 2
    layers: int = 1
    ff_multiplier: int = 4  # BERT's, the authors' trans_dim_scale
    dropout: float = 0.4
    learning_rate: float = 0.0023
    weight_decay: float = 0.0409
    batch_size: int = 256
    clip_norm: float | None = 92.0
    mask_probability: float = option(0.9, low=0.0, high=1.0, low_open=True,
                                     help="share of a training session's items masked (the paper's tuned value)")
    masked_copies: int = option(10, low=0, help="randomly masked copies per next-item copy of a session "
                                                "(authors: 10 a session per epoch; 0 = next-item copies only)")
    max_epochs: int = option(1100, low=1, help="passes over the sessions (the authors' 100 epochs of 11 copies)")
    patience: int = option(10, low=1, help="passes without a better validation NDCG@20 before stopping "
                                           "(the paper's 2 epochs were 22 passes)")
    search_space: ClassVar[dict[str, Space]] = {
        **TransformerConfig.search_space, "embedding_dim": one_of(64, 128, 192, 256), "heads": one_of(1, 2, 4),
        "layers": between(1, 3), "mask_probability": between(0.2, 0.9), "batch_size": one_of(64, 128, 256),
        "warmup_steps": one_of(0, 500)}


@dataclass(frozen=True)
class LLM2BERT4RecConfig(BERT4RecConfig):
    item_init: Literal["random", "llm"] = "llm"


class BERT4RecNetwork(SequentialNetwork):
    def __init__(self, n_items: int, config: BERT4RecConfig) -> None:
        super().__init__()
        dim = config.embedding_dim
        self.pad, self.mask, self.max_length = n_items, n_items + 1, config.max_length
        self.item_table = init_item_table(n_items + 2, dim, config.init_std, padding_idx=n_items)
        self.positions = nn.Embedding(config.max_length, dim)
        nn.init.normal_(self.positions.weight, std=config.init_std)
        self.embedding_norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, config.heads, config.ff_multiplier * dim, config.dropout, norm_first=False,
                             attention_dropout=config.attention_dropout) for _ in range(config.layers))
        self.output = TiedOutput(dim, dim, n_items, bias=config.output_bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, L) left-padded ids (items and masks) -> (batch, L, dim); every position sees the session."""
        x = self.item_table(tokens) + self.positions(right_aligned_positions(tokens.shape[1], self.max_length,
                                                                            tokens.device))
        x = self.drop(self.embedding_norm(x))
        allowed = attention_mask(tokens, self.pad, causal=False)
        for block in self.blocks:
            x = block(x, allowed)
        return x


class BERT4Rec(SequentialRecommender):
    name = "bert4rec"
    card = Card("item IDs", "A bidirectional transformer trained to fill in masked item IDs.",
                "logit (not a probability)", "often comes with these items in past sessions")
    Config = BERT4RecConfig

    module: BERT4RecNetwork

    def build(self, n_items: int) -> BERT4RecNetwork:
        return BERT4RecNetwork(n_items, self.config)

    epoch_name = "pass"

    def epoch_batches(self, sessions: list[np.ndarray], rng: np.random.Generator) -> list[tuple[Any, ...]]:
        """One pass: every session once, as its next-item copy (probability 1 / (1 + masked_copies)) or a
        randomly masked copy (each item masked with ``mask_probability``; a copy with nothing masked is left
        out, as the authors' generator does); masks drawn anew every pass."""
        config = self.config
        padded, lengths = pad_batch(sessions, config.max_length, self.pad, min_width=config.max_length)
        tokens = padded.numpy()
        real = tokens != self.pad
        next_item = rng.random(len(tokens)) < 1.0 / (1 + config.masked_copies)
        masked = real & (rng.random(tokens.shape) < config.mask_probability) & ~next_item[:, None]
        masked[next_item, -1] = True  # left padding: the last column is every session's last item
        keep = np.flatnonzero(masked.any(axis=1))
        inputs = np.where(masked, self.module.mask, tokens)
        targets = np.where(masked, tokens, IGNORE)
        rows_of = [keep[rows] for rows in batch_rows(lengths.numpy()[keep], config.batch_size, rng,
                                                      config.length_buckets)]
        weights = target_weights([int(masked[rows].sum()) for rows in rows_of], config.weigh_by_targets)
        batches: list[tuple[torch.Tensor, torch.Tensor, float]] = []
        for rows, weight in zip(rows_of, weights):
            width = int(lengths[rows].max())  # drop all-padding columns
            batches.append((torch.from_numpy(inputs[rows, -width:]), torch.from_numpy(targets[rows, -width:]),
                            weight))
        return batches

    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor, float]) -> torch.Tensor:
        inputs, targets = (t.to(self.module.device, non_blocking=True) for t in batch[:2])
        masked = targets != IGNORE
        hidden = self.module(inputs)[masked]
        return self.output_loss(hidden, targets[masked]) * batch[2]

    def targets_per_row(self, batch: tuple[torch.Tensor, torch.Tensor, float]) -> np.ndarray:
        return (batch[1] != IGNORE).sum(1).numpy()

    def session_hidden(self, sessions: Sequence[np.ndarray]) -> torch.Tensor:
        # The last max_length - 1 items and a mask token in the last slot, whose item the model fills in.
        with_mask = [np.append(np.asarray(s, dtype=np.int64)[len(s) - min(len(s), self.config.max_length - 1):],
                               self.module.mask) for s in sessions]
        tokens, _ = pad_batch(with_mask, self.config.max_length, self.pad)
        return self.module(tokens.to(self.module.device))[:, -1]


class LLM2BERT4Rec(BERT4Rec):
    name = "llm2bert4rec"
    card = Card("titles and item IDs", "BERT4Rec whose item vectors start from the titles' LLM embeddings.",
                "logit (not a probability)", "often comes with these items in past sessions")
    Config = LLM2BERT4RecConfig
