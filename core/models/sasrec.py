"""SASRec (Kang & McAuley 2018): causal self-attention over the session; each position predicts the next item.

Pre-LN transformer blocks (as SASRec.pytorch and the authors' ``NFDR`` layout), learned positions counted
from the session's end, embedding dropout, a final LayerNorm, and full-softmax cross-entropy at every real
position with the output tied to the item table (or sampled softmax, ``loss="sampled"``: see
``core.models.sequential``). ``llm2sasrec`` is the same model with the item table initialised from the titles'
LLM embeddings (LLM2SASRec, Boz et al. 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence

import numpy as np
import torch
from torch import nn

from core.config import Space, between, one_of
from core.models.base import Card
from core.models.sequential import (
    SequentialNetwork,
    SequentialRecommender,
    TiedOutput,
    TransformerBlock,
    TransformerConfig,
    attention_mask,
    init_item_table,
    pad_batch,
    padded_batches,
    right_aligned_positions,
)


@dataclass(frozen=True)
class SASRecConfig(TransformerConfig):
    # The paper's tuned values for Beauty (Boz et al. 2024, appendix).
    embedding_dim: int = 48
    heads: int = 3
    layers: int = 2
    ff_multiplier: int = 1  # the authors' SASRec
    dropout: float = 0.25
    learning_rate: float = 0.0048
    weight_decay: float = 0.0962
    batch_size: int = 32
    search_space: ClassVar[dict[str, Space]] = {
        **TransformerConfig.search_space, "embedding_dim": one_of(32, 48, 64, 96, 128), "heads": one_of(1, 2, 3, 4),
        "layers": between(1, 3)}


@dataclass(frozen=True)
class LLM2SASRecConfig(SASRecConfig):
    item_init: Literal["random", "llm"] = "llm"


class SASRecNetwork(SequentialNetwork):
    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        dim = config.embedding_dim
        self.pad, self.max_length = n_items, config.max_length
        self.item_table = init_item_table(n_items + 1, dim, config.init_std, padding_idx=n_items)
        self.positions = nn.Embedding(config.max_length, dim)
        nn.init.normal_(self.positions.weight, std=config.init_std)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, config.heads, config.ff_multiplier * dim, config.dropout, norm_first=True,
                             attention_dropout=config.attention_dropout) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(dim)
        self.output = TiedOutput(dim, dim, n_items, bias=config.output_bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, L) left-padded item ids -> (batch, L, dim); position i sees items 0..i only."""
        x = self.item_table(tokens) + self.positions(right_aligned_positions(tokens.shape[1], self.max_length,
                                                                            tokens.device))
        x = self.drop(x)
        allowed = attention_mask(tokens, self.pad, causal=True)
        for block in self.blocks:
            x = block(x, allowed)
        return self.final_norm(x)


class SASRec(SequentialRecommender):
    name = "sasrec"
    card = Card("item IDs", "A self-attention network trained to predict the next item ID from the previous ones.",
                "logit (not a probability)", "often follows these items in past sessions")
    Config = SASRecConfig

    def build(self, n_items: int) -> SASRecNetwork:
        return SASRecNetwork(n_items, self.config)

    def epoch_batches(self, sessions: list[np.ndarray], rng: np.random.Generator) -> list[tuple[torch.Tensor, float]]:
        return padded_batches(sessions, self.config, self.pad, rng, left=True)

    def batch_loss(self, batch: tuple[torch.Tensor, float]) -> torch.Tensor:
        # A session's last max_length + 1 items: inputs are all but the last, targets all but the first.
        tokens, weight = batch[0].to(self.module.device, non_blocking=True), batch[1]
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        real = inputs != self.pad  # left padding: a real input always has a real next item
        hidden = self.module(inputs)[real]
        return self.output_loss(hidden, targets[real]) * weight

    def targets_per_row(self, batch: tuple[torch.Tensor, float]) -> np.ndarray:
        return (batch[0][:, :-1] != self.pad).sum(1).numpy()

    def session_hidden(self, sessions: Sequence[np.ndarray]) -> torch.Tensor:
        tokens, _ = pad_batch(sessions, self.config.max_length, self.pad)
        return self.module(tokens.to(self.module.device))[:, -1]


class LLM2SASRec(SASRec):
    name = "llm2sasrec"
    card = Card("titles and item IDs", "SASRec whose item vectors start from the titles' LLM embeddings.",
                "logit (not a probability)", "often follows these items in past sessions")
    Config = LLM2SASRecConfig
