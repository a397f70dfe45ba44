"""GRU4Rec (Hidasi et al. 2016), as the paper trains it: a GRU over the session's item embeddings predicts
the next item at every step, with full-softmax cross-entropy and the output tied to the item table.

Sessions are padded on the right, so the recurrence never runs over padding before a real item; the
prediction for a session is read at its last real step (an empty session uses the GRU's initial state).
``llm2gru4rec`` initialises the item table from the titles' LLM embeddings (LLM2GRU4Rec, Boz et al. 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence

import numpy as np
import torch
from torch import nn

from core.config import Space, one_of, option
from core.models.base import Card
from core.models.sequential import (
    SequentialConfig,
    SequentialNetwork,
    SequentialRecommender,
    TiedOutput,
    init_item_table,
    pad_batch,
    padded_batches,
)


@dataclass(frozen=True)
class GRU4RecConfig(SequentialConfig):
    # The paper's tuned values for Beauty (Boz et al. 2024, appendix); dropout: the authors' default.
    embedding_dim: int = 80
    hidden_dim: int = option(32, low=1, help="GRU state size")
    dropout: float = option(0.2, help="on the embeddings and on the GRU's outputs")
    learning_rate: float = 0.0072
    weight_decay: float = 0.0893
    batch_size: int = 32
    search_space: ClassVar[dict[str, Space]] = {
        **SequentialConfig.search_space, "embedding_dim": one_of(32, 64, 80, 128),
        "hidden_dim": one_of(32, 64, 100, 128)}


@dataclass(frozen=True)
class LLM2GRU4RecConfig(GRU4RecConfig):
    item_init: Literal["random", "llm"] = "llm"


class GRU4RecNetwork(SequentialNetwork):
    def __init__(self, n_items: int, config: GRU4RecConfig) -> None:
        super().__init__()
        self.pad = n_items
        self.item_table = init_item_table(n_items + 1, config.embedding_dim, config.init_std, padding_idx=n_items)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.embedding_dim, config.hidden_dim, batch_first=True)
        self.output = TiedOutput(config.hidden_dim, config.embedding_dim, n_items, bias=config.output_bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, L) right-padded ids -> (batch, L + 1, hidden): slot 0 is the initial state, slot t + 1 the
        state after item t (so slot ``length`` is a session's last state, whatever its length)."""
        states, _ = self.gru(self.drop(self.item_table(tokens)))
        initial = states.new_zeros(states.shape[0], 1, states.shape[2])
        return torch.cat([initial, self.drop(states)], dim=1)


class GRU4Rec(SequentialRecommender):
    name = "gru4rec"
    card = Card("item IDs", "A recurrent network trained to predict the next item ID from the previous ones.",
                "logit (not a probability)", "often follows these items in past sessions")
    Config = GRU4RecConfig

    def build(self, n_items: int) -> GRU4RecNetwork:
        return GRU4RecNetwork(n_items, self.config)

    def epoch_batches(self, sessions: list[np.ndarray], rng: np.random.Generator) -> list[tuple[torch.Tensor, float]]:
        return padded_batches(sessions, self.config, self.pad, rng, left=False)

    def batch_loss(self, batch: tuple[torch.Tensor, float]) -> torch.Tensor:
        tokens, weight = batch[0].to(self.module.device, non_blocking=True), batch[1]
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        real = targets != self.pad  # right padding: a real target always follows a real input
        hidden = self.module(inputs)[:, 1:][real]
        return self.output_loss(hidden, targets[real]) * weight

    def targets_per_row(self, batch: tuple[torch.Tensor, float]) -> np.ndarray:
        return (batch[0][:, 1:] != self.pad).sum(1).numpy()

    def session_hidden(self, sessions: Sequence[np.ndarray]) -> torch.Tensor:
        tokens, lengths = pad_batch(sessions, self.config.max_length, self.pad, left=False)
        device = self.module.device
        return self.module(tokens.to(device))[torch.arange(len(lengths), device=device), lengths.to(device)]


class LLM2GRU4Rec(GRU4Rec):
    name = "llm2gru4rec"
    card = Card("titles and item IDs", "GRU4Rec whose item vectors start from the titles' LLM embeddings.",
                "logit (not a probability)", "often follows these items in past sessions")
    Config = LLM2GRU4RecConfig
