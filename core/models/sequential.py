"""What GRU4Rec, SASRec and BERT4Rec share: the config fields, padding, the tied output layer, a transformer
block, LLM2X initialisation of the item table, and fit/score/save on top of ``core.train``.

Item table layout (every model): rows ``0..n_items-1`` are the catalog items, row ``n_items`` is padding
(``padding_idx``: zero, never trained) and row ``n_items + 1`` is BERT4Rec's mask token. The output layer
scores only the catalog rows, so neither padding nor mask can be recommended; and which items a session
holds comes from the session itself, never from its padded tensor (the authors' code mapped padding to an
item id and so marked the highest item as seen).

LLM2X (the paper's LLM2Sequential): with ``item_init="llm"`` the catalog rows are overwritten, before
training, with the item title embeddings reduced to the model's width (``core.reduce``: PCA by default);
they stay trainable. ``shuffle_llm_vectors`` gives each item another item's vector: the authors' ablation,
which keeps the vectors' distribution but breaks their link to the items.

Catalog scale (issue 16): ``loss="sampled"`` trains with sampled softmax (``TiedOutput.sampled_loss``,
``NegativeSampler``): a step scores each target against ``negatives`` items drawn once per batch, so neither its
time nor its memory grows with the catalog (only the item table, its gradient and AdamW's moments do). Ranking
(validation, evaluation) still scores every item. When torch.distributed is initialised (``torchrun``,
``python -m core train --processes N``) every model trains data-parallel: ``shard_batch`` gives each process its
rows of every batch, ``core.train`` wraps the network in DistributedDataParallel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from core import train as loop
from core.common import ConfigError, Progress
from core.config import Options, Space, between, one_of, option
from core.data import DataError, Split
from core.models.base import Recommender


@dataclass(frozen=True)
class SequentialConfig(Options):
    max_length: int = option(20, low=1, help="a session is cut to its last N items (the paper: 20)")
    embedding_dim: int = option(64, low=1, help="item table width = model width")
    dropout: float = option(0.2, low=0.0, high=1.0, high_open=True, help="share of activations zeroed in training")
    learning_rate: float = option(1e-3, low=0.0, low_open=True, help="AdamW step size")
    weight_decay: float = option(0.01, low=0.0, help="AdamW, decoupled")
    batch_size: int = option(64, low=1, help="training examples per step")
    clip_norm: float | None = option(None, low=0.0, low_open=True, help="max gradient norm; None = no clipping")
    max_epochs: int = option(100, low=1, help="the authors' num_epochs; early stopping ends sooner")
    warmup_steps: int = option(0, low=0, help="learning rate raised linearly over the first N steps (0 = none; "
                                              "BERT4Rec's original code: 100)")
    patience: int = option(5, low=1,
                           help="epochs without a better validation NDCG@20 before stopping (the paper: 2; see README)")
    validation_fraction: float = option(0.1, low=0.0, high=1.0, high_open=True,
                                        help="train sessions held out for early stopping (the paper) ...")
    max_validation_sessions: int = option(2000, low=0, help="... at most this many (paper: 500; 0 = no early stop)")
    early_stopping_set: Literal["random", "latest", "latest_targets"] = option(
        "random", help="held-out sessions: random (the paper), the latest in time (shaped like the test split, but "
                       "then missing from training), or latest_targets: the latest sessions' last items only, their "
                       "prompts kept in training (the time-to-split study's validation)")
    length_buckets: bool = option(True, help="batch sessions of similar length (less padding, same examples; "
                                             "batches in random order)")
    weigh_by_targets: bool = option(True, help="weight each batch's mean loss by its number of targets, so every "
                                               "target of an epoch counts the same (False: every batch counts the "
                                               "same, the usual per-batch mean)")
    device: Literal["auto", "cpu", "cuda"] = option("auto", help="where to train: auto = a CUDA GPU when torch "
                                                                 "sees one, else the CPU")
    precision: Literal["auto", "float32", "bfloat16"] = option(
        "auto", help="training step: auto = bf16 autocast on a bf16 GPU, float32 on a CPU (bf16 measured no "
                     "faster there); bfloat16 also on an AVX-512 BF16/AMX CPU; ranking stays float32")
    output_bias: bool = option(True, keyed=False,
                               help="a learned score per item added to every session's scores (a popularity prior); "
                                    "False = none, as the authors' Keras head (its BiasLayer is one scalar)")
    init_std: float = option(0.02, low=0.0, low_open=True,
                             help="item table init (Keras' uniform(-0.05, 0.05) has std 0.029)")
    seed: int = option(0, low=0, help="weights init, dropout and batch order")
    # Catalog scale (issue 16): the training loss. Ranking (validation, evaluation) always scores the full catalog.
    loss: Literal["full", "sampled"] = option(
        "full", keyed=False, help="training loss: full = softmax cross-entropy over the whole catalog (the paper); "
                                  "sampled = over the target and `negatives` items drawn per batch, so a step's "
                                  "time and memory no longer grow with the catalog (for catalogs of 100k+ items)")
    # 1024: the more negatives, the closer the sampled loss and its gradient to the full softmax's (negatives >=
    # n_items is the full loss); their cost is rows x negatives x width a step, which at 1024 is still small next to
    # SASRec's network: on Beauty an epoch took 5.7 s with 1024, 5.0 s with 256, 11.7 s with the full softmax.
    negatives: int = option(1024, low=1, keyed=False,
                            help="loss=sampled: items drawn per batch, shared by its targets (>= the catalog: "
                                 "every item once, the full softmax)")
    negative_sampling: Literal["popularity", "uniform"] = option(
        "popularity", keyed=False, help="loss=sampled: draw negatives in proportion to train interactions + 1, "
                                        "with the logQ correction (Yi et al. 2019), or uniformly")
    # LLM2X: initialise the item table from text embeddings of the titles.
    item_init: Literal["random", "llm"] = option("random", help="\"llm\" = LLM2X: item table from title embeddings")
    embedding_provider: Literal["local", "openai"] = option("local", help="for item_init=\"llm\" (local: offline)")
    embedding_model: str | None = option(None, help="None = the provider's default (local: all-MiniLM-L6-v2)")
    long_titles: Literal["cut", "head_tail"] = option("cut",
                                                      help="past the model's window: cut the end, or keep head+tail")
    embedding_fields: str = option("", help="other item text fields embedded after the title, comma-separated "
                                            "(e.g. \"category,tags\"); the title stays what is shown", keyed=False)
    reduction: Literal["pca", "lda", "random"] = option("pca", help="to the model width (the paper's best: PCA)")
    llm_std: float | None = option(None, low=0.0, low_open=True,
                                   help="rescale the vectors to this std (None = as reduced, the authors' raw PCA)")
    shuffle_llm_vectors: bool = option(False, help="ablation: permute the vectors across items")
    # core.tune's ranges shared by the three models (each adds its architecture's); an LLM2 twin searches its
    # vanilla model's space (its reduction and vector scale stay at the paper's PCA, as reduced).
    search_space: ClassVar[dict[str, Space]] = {
        "dropout": between(0.0, 0.5), "learning_rate": between(1e-4, 1e-2, log=True),
        "weight_decay": between(1e-3, 0.2, log=True), "batch_size": one_of(32, 64, 128, 256),
        "max_length": one_of(20, 50)}



@dataclass(frozen=True)
class TransformerConfig(SequentialConfig):
    """What SASRec and BERT4Rec add: their configs set other defaults, and inherit the ranges and help."""

    heads: int = option(2, low=1, help="attention heads; embedding_dim must be a multiple")
    layers: int = option(1, low=1, help="transformer blocks")
    ff_multiplier: int = option(1, low=1, help="feed-forward width = ff_multiplier * embedding_dim")
    attention_dropout: float | None = option(
        None, low=0.0, high=1.0, high_open=True, keyed=False,
        help="share of attention weights zeroed in training; None = `dropout` (this project's models so far); "
             "0 = none, as the authors' Keras SASRec/BERT4Rec (their attention layers take no dropout)")

    def check(self) -> None:
        if self.embedding_dim % self.heads:
            raise ConfigError(f"option 'embedding_dim' ({self.embedding_dim}) must be a multiple of 'heads' "
                              f"({self.heads})")


def pad_batch(sessions: Sequence[np.ndarray], max_length: int, pad: int, left: bool = True,
              min_width: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Each session's last ``max_length`` items as one (batch, width) int64 tensor filled with ``pad``, and
    the kept lengths. ``left=True`` right-aligns the items (pad on the left, the transformers' layout),
    ``left=False`` left-aligns them (the GRU's). width = the longest kept session (short batches stay
    cheap), at least ``min_width``."""
    kept = [np.asarray(s, dtype=np.int64)[len(s) - min(len(s), max_length):] for s in sessions]
    lengths = np.array([len(s) for s in kept], dtype=np.int64)
    width = int(max(lengths.max(initial=0), min_width))
    out = np.full((len(kept), width), pad, dtype=np.int64)
    for row, session in zip(out, kept):
        if len(session):
            if left:
                row[width - len(session):] = session
            else:
                row[: len(session)] = session
    return torch.from_numpy(out), torch.from_numpy(lengths)


def batch_rows(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, by_length: bool,
               chunk_batches: int = 50) -> list[np.ndarray]:
    """One epoch's batches as row indices: every row once, in random order. With ``by_length``, rows are
    shuffled, cut into chunks of ``chunk_batches`` batches, sorted by length within a chunk and batched, and
    the batches shuffled: a batch holds rows of similar length, so little of it is padding (the usual
    bucketing iterator), while each batch is still drawn from a random part of the data."""
    order = rng.permutation(len(lengths))
    if by_length:
        span = batch_size * chunk_batches
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in np.array_split(order, max(1, math.ceil(len(order) / span)))])
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))] if by_length else batches


def padded_batches(sessions: Sequence[np.ndarray], config: SequentialConfig, pad: int, rng: np.random.Generator,
                   left: bool) -> list[tuple[torch.Tensor, float]]:
    """One epoch of ``(tokens, weight)``: (batch, width) int64 tensors of sessions' last ``max_length + 1``
    items (inputs and their next items), padded once for the epoch and trimmed per batch to its longest
    session (``batch_rows``), and the batch's weight (``target_weights``: each session predicts its items
    after the first)."""
    tokens, lengths = pad_batch(sessions, config.max_length + 1, pad, left=left, min_width=2)
    rows_of = batch_rows(lengths.numpy(), config.batch_size, rng, config.length_buckets)
    weights = target_weights([int((lengths[rows] - 1).clip(min=0).sum()) for rows in rows_of],
                             config.weigh_by_targets)
    widths = [max(2, int(lengths[rows].max())) for rows in rows_of]
    return [(tokens[rows, -width:] if left else tokens[rows, :width], weight)
            for rows, width, weight in zip(rows_of, widths, weights)]


def target_weights(targets_per_batch: Sequence[int], weigh: bool = True) -> list[float]:
    """Each batch's loss weight: its number of targets over the epoch's mean per batch. A batch's loss is the
    mean cross-entropy over its targets, so weighting it so makes every target of the epoch count the same
    whatever batch it falls in — the objective of one mean over all the epoch's targets. Without it,
    length-bucketed batches would give a target in a batch of two-item sessions ~50 times the weight of one
    in a batch of 50-item sessions. ``weigh=False``: 1.0 for every batch (the per-batch mean)."""
    if not weigh:
        return [1.0] * len(targets_per_batch)
    mean = sum(targets_per_batch) / max(len(targets_per_batch), 1)
    return [n / mean if mean else 1.0 for n in targets_per_batch]


def right_aligned_positions(width: int, max_length: int, device: torch.device | None = None) -> torch.Tensor:
    """Position ids of a left-padded batch of ``width``: the last slot is always ``max_length - 1``, as when
    every batch is padded to the full ``max_length`` (so a session's scores never depend on its batch)."""
    return torch.arange(max_length - width, max_length, device=device)


class TiedOutput(nn.Module):
    """Scores over the catalog: ``gelu(W h + b) · E_items^T + bias``, E = the input item table (the
    authors' ProjectionHead). Padding and mask rows of E are left out, so they are never scored.
    ``bias=False``: the per-item bias stays zero and is not trained (kept in the state, so saves load alike)."""

    def __init__(self, hidden_dim: int, embedding_dim: int, n_items: int, bias: bool = True) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_dim, embedding_dim)
        self.n_items = n_items
        self.bias = nn.Parameter(torch.zeros(n_items), requires_grad=bias)

    def forward(self, hidden: torch.Tensor, item_table: nn.Embedding) -> torch.Tensor:
        """(n, hidden_dim) -> (n, n_items) scores."""
        return torch.addmm(self.bias, F.gelu(self.dense(hidden)), item_table.weight[: self.n_items].T)

    def loss(self, hidden: torch.Tensor, item_table: nn.Embedding, targets: torch.Tensor) -> torch.Tensor:
        """Mean full-softmax cross-entropy of ``targets`` (n,) int64 given ``hidden`` (n, hidden_dim): the value
        and gradients of ``F.cross_entropy(self(hidden, item_table), targets)`` (a test holds it) without ever
        holding the (n, n_items) scores — see ``_SoftmaxCrossEntropy``."""
        features = F.gelu(self.dense(hidden)).float()
        return _SoftmaxCrossEntropy.apply(features, item_table.weight[: self.n_items].float(), self.bias.float(),
                                          targets)


    def sampled_loss(self, hidden: torch.Tensor, item_table: nn.Embedding, targets: torch.Tensor,
                     negatives: torch.Tensor, log_q: torch.Tensor | None = None) -> torch.Tensor:
        """Mean sampled-softmax cross-entropy of ``targets`` (n,) int64 given ``hidden`` (n, hidden_dim): each row's
        logits are its target's and those of ``negatives`` (m,) int64 (one set shared by the batch), through the
        same tied output as ``forward``; the target is column 0. A negative equal to the row's target (an
        accidental hit) is masked out of that row. ``log_q`` (n_items,) float: log of each item's sampling
        probability, subtracted from every logit, target's included — the correction of sampled softmax
        (Bengio & Senécal 2008, "Adaptive importance sampling to accelerate training of a neural probabilistic
        language model"; Jean et al. 2015; as ``tf.nn.sampled_softmax_loss``), which Yi et al. 2019
        ("Sampling-bias-corrected neural modeling for large corpus item recommendations", RecSys) apply to
        recommendation. None = no correction (uniform sampling: a constant shift, which cancels).

        Never holds (n, n_items) scores, nor even (n, m + 1): ``_SampledSoftmaxCrossEntropy`` takes a block of rows
        at a time. What is of catalog size is the gradient of the item table and of the bias (dense, as the
        parameters). With ``negatives`` = every item and no correction it is the full softmax cross-entropy (a
        test holds it)."""
        features = F.gelu(self.dense(hidden)).float()
        n = len(targets)
        with torch.autocast(features.device.type, enabled=False):
            # one lookup of the targets' and the negatives' rows: its backward is one (n_items + 1, dim) gradient
            items = torch.cat([targets, negatives])
            rows, item_bias = F.embedding(items, item_table.weight).float(), self.bias.float()[items]
            if log_q is not None:
                item_bias = item_bias - log_q[items]
            return _SampledSoftmaxCrossEntropy.apply(features, rows[:n], item_bias[:n], rows[n:], item_bias[n:],
                                                     targets, negatives)


class _SampledSoftmaxCrossEntropy(torch.autograd.Function):
    """loss = mean_i(log(e^{t_i} + sum_j e^{z_ij}) - t_i): t_i = f_i · e_{target_i} + b'_{target_i} (the target's
    logit), z_ij = f_i · e_j + b'_j for the m shared negatives, -inf where negative j is row i's target (b' = bias
    less log q). As ``_SoftmaxCrossEntropy``, a block of rows at a time with the gradients taken in the forward
    pass, into buffers of one size for the whole run: built from autograd ops, the (n, m + 1) logits of every
    batch had another size, and glibc's heap grew from 0.5 to 3 GB over 1,000 Beauty steps (its mmap threshold
    rises to the largest block freed; blocks of many sizes then fragment the heap; measured, 2 epochs: 0.89 GB
    peak, here 0.5 GB as the full softmax)."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, target_rows: torch.Tensor, target_bias: torch.Tensor,
                negative_rows: torch.Tensor, negative_bias: torch.Tensor, targets: torch.Tensor,
                negatives: torch.Tensor) -> torch.Tensor:
        n, m = len(targets), len(negatives)
        # ~3 MB of logits per block on a CPU, the same buffer size every batch; the whole batch on a GPU
        block = max(n, 1) if features.is_cuda else int(np.clip(786_432 // max(m, 1), 16, 1024))
        with torch.no_grad(), torch.autocast(features.device.type, enabled=False):
            grad_features, grad_target_rows = torch.empty_like(features), torch.empty_like(target_rows)
            grad_target_bias = torch.empty_like(target_bias)
            grad_negative_rows, grad_negative_bias = torch.zeros_like(negative_rows), torch.zeros_like(negative_bias)
            logits = features.new_empty(block, m)
            hits = torch.empty(block, m, dtype=torch.bool, device=features.device)
            total = features.new_zeros(())
            for start in range(0, n, block):
                stop = min(start + block, n)
                rows, wanted, target_row = features[start:stop], targets[start:stop], target_rows[start:stop]
                z = torch.addmm(negative_bias, rows, negative_rows.T, out=logits[: stop - start])
                z.masked_fill_(torch.eq(negatives[None, :], wanted[:, None], out=hits[: stop - start]), -math.inf)
                t = (rows * target_row).sum(1) + target_bias[start:stop]
                top = torch.maximum(z.max(1).values, t)
                z.sub_(top[:, None]).exp_()
                e_t = (t - top).exp()
                normaliser = z.sum(1) + e_t
                total += (normaliser.log() + top - t).sum()
                z.div_(normaliser[:, None])  # dz of the negatives: their softmax probabilities
                dz_t = e_t / normaliser - 1.0  # the target's: its probability - 1
                torch.addmm(target_row * dz_t[:, None], z, negative_rows, out=grad_features[start:stop])
                torch.mul(rows, dz_t[:, None], out=grad_target_rows[start:stop])
                grad_target_bias[start:stop] = dz_t
                grad_negative_rows.addmm_(z.T, rows)
                grad_negative_bias += z.sum(0)
        ctx.save_for_backward(grad_features, grad_target_rows, grad_target_bias, grad_negative_rows,
                              grad_negative_bias)
        return total / max(n, 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        scale = grad / max(len(ctx.saved_tensors[0]), 1)
        return (*(g * scale for g in ctx.saved_tensors), None, None)


class NegativeSampler:
    """The negatives of sampled softmax: ``negatives`` item indices per draw, one draw a batch, from a generator
    of its own (seeded: every data-parallel rank draws the same sets as one process would; dropout does not
    move it). ``uniform``: with replacement; ``popularity``: with replacement, item i with probability
    q_i = (c_i + 1) / sum_j (c_j + 1), c = train interactions (add-one, so every item can be drawn and log q is
    finite), by inverse CDF (O(m log n_items) a draw). ``negatives >= n_items``: every item once, no correction —
    the full softmax."""

    def __init__(self, n_items: int, negatives: int, counts: np.ndarray | None, seed: int,
                 device: torch.device) -> None:
        self.n_items, self.negatives, self.device = n_items, negatives, device
        self.every_item = negatives >= n_items
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.cdf: torch.Tensor | None = None
        self.log_q: torch.Tensor | None = None
        if counts is not None and not self.every_item:
            if len(counts) != n_items:
                raise ValueError(f"counts has {len(counts)} entries for {n_items} items")
            weights = np.asarray(counts, dtype=np.float64) + 1.0
            q = weights / weights.sum()
            self.cdf = torch.from_numpy(np.cumsum(q)).to(device)
            self.log_q = torch.from_numpy(np.log(q).astype(np.float32)).to(device)

    def draw(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(negatives,) int64 item indices on the device, and log q (n_items,) or None (no correction)."""
        if self.every_item:
            return torch.arange(self.n_items, device=self.device), None
        if self.cdf is None:
            return torch.randint(self.n_items, (self.negatives,), generator=self.generator, device=self.device), None
        u = torch.rand(self.negatives, generator=self.generator, dtype=torch.float64, device=self.device)
        drawn = torch.searchsorted(self.cdf, u * self.cdf[-1], right=True).clamp_(max=self.n_items - 1)
        return drawn, self.log_q


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """loss = mean_i(logsumexp_j(z_ij) - z_i,t_i), z = f E^T + b (full-softmax cross-entropy, as the paper's
    models are trained). The scores are computed a block of rows at a time, and each block's gradient
    dz = softmax(z) - onehot(t) is taken at once while the block is still in the CPU's cache; the gradients of
    f, E and b are accumulated in the forward pass and scaled in the backward pass. On Beauty (12,101 items)
    the (n, n_items) score matrix was most of an epoch: this is 2.2x faster than ``F.cross_entropy`` over it
    (bench/train_speed.py), with the same numbers up to float rounding. On a GPU one block holds every row."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, table: torch.Tensor, bias: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        n, n_items = len(targets), table.shape[0]
        # ~3 MB of scores per block on a CPU (fits a core's L2 cache); the whole batch on a GPU.
        block = n if features.is_cuda else int(np.clip(786_432 // max(n_items, 1), 16, 1024))
        with torch.no_grad(), torch.autocast(features.device.type, enabled=False):
            grad_features = torch.empty_like(features)
            grad_table, grad_bias = torch.zeros_like(table), torch.zeros_like(bias)
            total = features.new_zeros(())
            for start in range(0, n, block):
                rows, wanted = features[start:start + block], targets[start:start + block]
                scores = torch.addmm(bias, rows, table.T)
                log_normaliser = torch.logsumexp(scores, dim=1)
                total += (log_normaliser - scores.gather(1, wanted[:, None]).squeeze(1)).sum()
                dz = scores.sub_(log_normaliser[:, None]).exp_()  # softmax, in place
                dz[torch.arange(len(wanted), device=dz.device), wanted] -= 1.0
                grad_features[start:start + block] = dz @ table
                grad_table.addmm_(dz.T, rows)
                grad_bias += dz.sum(0)
        ctx.save_for_backward(grad_features, grad_table, grad_bias)
        return total / max(n, 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_features, grad_table, grad_bias = ctx.saved_tensors
        scale = grad / max(len(grad_features), 1)
        return grad_features * scale, grad_table * scale, grad_bias * scale, None


class SequentialNetwork(nn.Module):
    """What every sequential network has: the item table (catalog rows, then padding and, for BERT4Rec, the
    mask token) and the output layer tied to it; ``forward`` maps a padded batch to hidden vectors."""

    item_table: nn.Embedding
    output: TiedOutput

    @property
    def device(self) -> torch.device:
        return self.item_table.weight.device


class TransformerBlock(nn.Module):
    """Multi-head self-attention + feed-forward, pre-LN (SASRec) or post-LN (BERT4Rec), with dropout on the
    sublayers' outputs and (``attention_dropout``, default ``dropout``) on the attention weights.

    ``allowed`` (batch, 1, L, L) says which key each query may attend to: never a padding key, and for
    SASRec never a later one. Every query may attend to itself, so a padding row (whose keys are all
    padding) gets a finite value instead of NaN — which would otherwise leak into real rows via 0 * NaN.
    """

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float, norm_first: bool,
                 attention_dropout: float | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding_dim {dim} is not divisible by heads {heads}")
        self.heads, self.norm_first = heads, norm_first
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.norm_attention, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.attention_dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop(self.attention(self.norm_attention(x), allowed))
            return x + self.drop(self.ff(self.norm_ff(x)))
        x = self.norm_attention(x + self.drop(self.attention(x, allowed)))
        return self.norm_ff(x + self.drop(self.ff(x)))


def attention_mask(tokens: torch.Tensor, pad: int, causal: bool) -> torch.Tensor:
    """(batch, 1, L, L) bool, True = may attend: real keys only (and earlier ones if causal), plus self."""
    length = tokens.shape[1]
    allowed = (tokens != pad)[:, None, None, :].expand(-1, 1, length, -1)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
    return allowed | torch.eye(length, dtype=torch.bool, device=tokens.device)


class SequentialRecommender(Recommender):
    """fit/score/state for a torch module with ``item_table`` (nn.Embedding) and ``output`` (TiedOutput).

    A subclass builds the module (``build``), one epoch's batches (``epoch_batches``), a batch's loss
    (``batch_loss``) and the hidden vector that predicts each session's next item (``session_hidden``).
    """

    Config = SequentialConfig
    module: SequentialNetwork
    stochastic_fit = True
    # Trains data-parallel (torch DDP) when torch.distributed is initialised: see ``shard_batch`` and core.train.
    data_parallel: ClassVar[bool] = True
    sampler: NegativeSampler | None = None  # loss="sampled": set by fit

    # ---------------------------------------------------------------------------------- per model
    def build(self, n_items: int) -> SequentialNetwork:
        raise NotImplementedError

    def epoch_batches(self, sessions: list[np.ndarray], rng: np.random.Generator) -> list[Any]:
        raise NotImplementedError

    def batch_loss(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def session_hidden(self, sessions: Sequence[np.ndarray]) -> torch.Tensor:
        raise NotImplementedError

    def targets_per_row(self, batch: Any) -> np.ndarray:
        """(rows,) how many targets each row of a batch of ``epoch_batches`` holds."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------- shared
    @property
    def pad(self) -> int:
        return self.n_items

    epoch_name = "epoch"  # what one call of ``epoch_batches`` is (BERT4Rec: one pass of masked copies)

    def output_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of ``targets`` (n,) given ``hidden`` (n, hidden_dim), by ``config.loss``: the full
        softmax cross-entropy (``TiedOutput.loss``) or sampled softmax with one draw of ``self.sampler``."""
        output, table = self.module.output, self.module.item_table
        if self.config.loss == "full":
            return output.loss(hidden, table, targets)
        if self.sampler is None:
            raise RuntimeError(f"{self.name}: loss='sampled' needs the negative sampler that fit() sets")
        negatives, log_q = self.sampler.draw()
        return output.sampled_loss(hidden, table, targets, negatives, log_q)

    def shard_batch(self, batch: tuple[Any, ...], rank: int, world: int) -> tuple[Any, ...]:
        """This rank's part of a global batch for data-parallel training: rows ``rank, rank + world, ...`` (every
        row on one rank), and the batch's weight (its last element) times ``world * n_rank / n_batch`` (n: targets).
        The loss of a batch is its targets' mean times its weight, so a rank's loss is then
        ``world * weight * sum over its targets / n_batch``: DDP averages the ranks' gradients, which gives the
        gradient of the one-process loss of the whole batch. A rank left without rows (a batch of fewer rows
        than ranks) takes the first row with weight 0, so it still joins the gradient exchange."""
        *tensors, weight = batch
        per_row = self.targets_per_row(batch)
        rows = np.arange(rank, len(per_row), world)
        share = float(per_row[rows].sum() / max(per_row.sum(), 1))
        if not len(rows):
            rows, share = np.zeros(1, dtype=np.int64), 0.0
        index = torch.from_numpy(rows)
        return (*(t[index] for t in tensors), weight * share * world)

    def fit(self, split: Split, progress: Progress | None = None,
            confirm_spending: bool = False) -> "SequentialRecommender":
        config = self.config
        loop.configure_torch()
        device = loop.resolve_device(config.device)
        autocast = loop.autocast_dtype(config.precision, device)
        self.n_items = split.catalog.n_items
        torch.manual_seed(config.seed)
        self.module = self.build(self.n_items)
        if config.item_init == "llm":
            self.copy_llm_vectors(split, progress)
        self.module.to(device)
        sessions = [s for s in split.train if len(s) >= 2]
        if not sessions:
            raise DataError(f"{self.name}: no train session has 2 or more items; nothing to learn from")
        rng = np.random.default_rng(config.seed)
        train_sessions, held_out = loop.hold_out(sessions, config.validation_fraction, config.max_validation_sessions,
                                                 rng, latest=config.early_stopping_set != "random",
                                                 keep_prompts=config.early_stopping_set == "latest_targets")
        self.sampler = None
        if config.loss == "sampled":
            counts = np.bincount(np.concatenate(train_sessions), minlength=self.n_items) \
                if config.negative_sampling == "popularity" else None
            self.sampler = NegativeSampler(self.n_items, config.negatives, counts, config.seed, device)
        # validation ranks the full catalog: at most ~64M scores (256 MB) at a time, however large the catalog
        rows = int(np.clip(64_000_000 // max(self.n_items, 1), 16, 512))
        validate = (lambda: loop.validation_ndcg(lambda p, k: self.recommend(p, k, batch_size=rows)[0], held_out)) \
            if held_out else None
        try:
            self.history = loop.train(
                self.module, epoch_batches=lambda r: self.epoch_batches(train_sessions, r),
                batch_loss=self.batch_loss, validate=validate, learning_rate=config.learning_rate,
                weight_decay=config.weight_decay, clip_norm=config.clip_norm, max_epochs=config.max_epochs,
                patience=config.patience, seed=config.seed, progress=progress, label=self.name,
                autocast=autocast, epoch_name=self.epoch_name, shard=self.shard_batch,
                scheduler=loop.linear_warmup(config.warmup_steps) if config.warmup_steps else None)
        finally:
            self.module.cpu()  # saved, scored and shown on the CPU
            self.sampler = None
        return self

    @classmethod
    def text_embedding(cls, config: SequentialConfig) -> Any:
        if config.item_init != "llm":
            return None
        from core.embeddings import EmbeddingSpec

        return EmbeddingSpec(config.embedding_provider, config.embedding_model, config.long_titles,
                             config.embedding_fields)

    def llm_vectors(self, split: Split, progress: Progress | None = None) -> np.ndarray:
        """Title embeddings reduced to the model width, (n_items, width) float32 (LDA may give fewer columns:
        at most n_classes - 1; the remaining columns keep their random init)."""
        from core.embeddings import item_embeddings
        from core.reduce import reduce_dimensions

        config = self.config
        catalog = split.catalog
        vectors = item_embeddings(catalog, self.text_embedding(config), progress=progress)
        width = config.embedding_dim  # the item table's width in every model
        classes = catalog.categories if config.reduction == "lda" else None
        dim = width
        if config.reduction == "lda" and catalog.has_categories:
            dim = min(width, len(set(c or "(none)" for c in catalog.categories)) - 1)
        reduced = reduce_dimensions(vectors, method=config.reduction, dim=dim, classes=classes, seed=config.seed)
        reduced = reduced[:, :width]
        if config.llm_std is not None:
            reduced = reduced * (config.llm_std / max(float(reduced.std()), 1e-12))
        if config.shuffle_llm_vectors:
            reduced = reduced[np.random.default_rng(config.seed).permutation(len(reduced))]
        return reduced.astype(np.float32)

    def copy_llm_vectors(self, split: Split, progress: Progress | None = None) -> None:
        reduced = self.llm_vectors(split, progress)
        with torch.no_grad():  # catalog rows only: padding and mask rows keep their own init
            self.module.item_table.weight[: self.n_items, : reduced.shape[1]] = torch.from_numpy(reduced)

    def prepare_new_items(self, split: Split) -> tuple[bool, str]:
        """LLM2X: a new item (no train interaction in ``split``) takes the learned row and output bias of the seen
        item whose title embedding is nearest to its own (cosine). Training never showed a new item as a target:
        its row only drifted and its bias was pushed down, so as trained it ranks near the bottom. Measured on
        Beauty's 622 sessions whose target is new (``core.study`` cold-items): the nearest seen item's row gives
        HR@20 0.024, while a ridge map from title embedding to row and bias (fitted on the seen items) gives 0 —
        averaging shrinks the rows' norms, and with them every top score. Random-init models cannot: nothing
        is changed."""
        if self.config.item_init != "llm":
            return False, "ID-based: a new item's row was never trained"
        from core.embeddings import item_embeddings
        from core.vectors import unit

        seen = split.train_popularity > 0
        if seen.all() or not seen.any():
            return False, "every item was seen in train" if seen.all() else "no item was seen in train"
        vectors = unit(item_embeddings(split.catalog, self.text_embedding(self.config)))
        known, new = np.flatnonzero(seen), np.flatnonzero(~seen)
        nearest = known[np.argmax(vectors[new] @ vectors[known].T, axis=1)]
        with torch.no_grad():
            table, bias = self.module.item_table.weight, self.module.output.bias
            table[torch.from_numpy(new)] = table[torch.from_numpy(nearest)].clone()
            bias[torch.from_numpy(new)] = bias[torch.from_numpy(nearest)].clone()
        return True, (f"{len(new):,} new items: each takes the learned row and bias of the seen item with the most "
                      "similar title")

    def learned_item_vectors(self) -> np.ndarray:
        """The item table's catalog rows after training (padding and mask rows left out)."""
        return self.module.item_table.weight[: self.n_items].detach().cpu().numpy().astype(np.float32)

    def score(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        self.module.eval()
        with torch.no_grad():
            return self.module.output(self.session_hidden(sessions), self.module.item_table).float().cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        arrays = {f"module.{k}": v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        return {**arrays, **getattr(self, "history", loop.History()).arrays()}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.module = self.build(self.n_items)
        weights = {k[len("module."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                   if k.startswith("module.")}
        self.module.load_state_dict(weights)
        self.module.eval()
        self.history = loop.History.from_arrays(arrays)


def init_item_table(n_rows: int, dim: int, std: float, padding_idx: int) -> nn.Embedding:
    table = nn.Embedding(n_rows, dim, padding_idx=padding_idx)
    nn.init.normal_(table.weight, std=std)
    with torch.no_grad():
        table.weight[padding_idx].zero_()
    return table

