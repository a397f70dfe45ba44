"""Issue 16, training at catalog scale: sampled softmax for the sequential models and data-parallel training
(torch DDP, gloo on the CPU) whose loss curve is the one-process curve."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import ROOT
from tiny_data import write_tiny_dataset
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from core import data, train
from core.config import keyed_dict
from core.models import create, model_class
from core.models.sequential import NegativeSampler, SequentialRecommender, TiedOutput
from core.store import label

TINY = {  # as tests/test_recommender_contract.py's: small enough to learn the synthetic walk in seconds
    "sasrec": {"embedding_dim": 16, "heads": 2, "layers": 1, "learning_rate": 0.01, "init_std": 0.1,
               "max_epochs": 30, "patience": 3},
    "bert4rec": {"embedding_dim": 16, "heads": 2, "layers": 1, "batch_size": 32, "learning_rate": 0.01,
                 "dropout": 0.1, "masked_copies": 2, "init_std": 0.1, "max_epochs": 90, "patience": 15},
    "gru4rec": {"embedding_dim": 16, "hidden_dim": 16, "learning_rate": 0.02, "max_epochs": 30, "patience": 3},
}


def tied_pair(n_items: int, seed: int = 0) -> tuple[TiedOutput, torch.nn.Embedding]:
    torch.manual_seed(seed)
    output, table = TiedOutput(8, 6, n_items), torch.nn.Embedding(n_items + 1, 6)
    with torch.no_grad():
        output.bias.normal_()
    return output, table


def copies(output: TiedOutput, table: torch.nn.Embedding) -> tuple[TiedOutput, torch.nn.Embedding]:
    other_output, other_table = TiedOutput(8, 6, output.n_items), torch.nn.Embedding(*table.weight.shape)
    other_output.load_state_dict(output.state_dict())
    other_table.load_state_dict(table.state_dict())
    return other_output, other_table



def assert_same_loss_and_gradients(expected, got, reference, candidate, rel, atol):
    """``got`` has ``expected``'s value, and backpropagating both (scaled by 3, so the backward's scaling counts)
    gives the same gradients to the output layer's dense weight, bias and item table of each (output, table)."""
    (3 * expected).backward()
    (3 * got).backward()
    assert got.item() == pytest.approx(expected.item(), rel=rel)
    (output_a, table_a), (output_b, table_b) = reference, candidate
    for a, b in [(output_a.dense.weight, output_b.dense.weight), (output_a.bias, output_b.bias),
                 (table_a.weight, table_b.weight)]:
        torch.testing.assert_close(b.grad, a.grad, rtol=rel * 10, atol=atol)

def test_sampled_softmax_with_every_item_as_negative_is_the_full_softmax():
    n_items = 50
    reference, table_a = tied_pair(n_items)
    sampled, table_b = copies(reference, table_a)
    hidden, targets = torch.randn(40, 8), torch.randint(0, n_items, (40,))
    expected = F.cross_entropy(reference(hidden, table_a), targets)
    negatives, log_q = NegativeSampler(n_items, n_items, None, seed=0, device=torch.device("cpu")).draw()
    assert negatives.tolist() == list(range(n_items)) and log_q is None  # every item once, no correction
    got = sampled.sampled_loss(hidden, table_b, targets, negatives, log_q)
    assert_same_loss_and_gradients(expected, got, (reference, table_a), (sampled, table_b), rel=1e-6, atol=1e-7)
    # more negatives than items is the same: every item once
    more, _ = NegativeSampler(n_items, 1000, np.ones(n_items), seed=0, device=torch.device("cpu")).draw()
    assert more.tolist() == list(range(n_items))


def test_an_accidental_hit_is_masked_and_log_q_is_subtracted_from_every_logit():
    output, table = tied_pair(10)
    hidden = torch.randn(2, 8)
    targets = torch.tensor([3, 7])
    negatives = torch.tensor([3, 5, 3, 7])  # row 0's target twice among the negatives, row 1's once
    with torch.no_grad():
        z = output(hidden, table)  # (2, 10) full logits, by the forward that ranks
    # by hand: row 0 = -log(e^z3 / (e^z3 + e^z5 + e^z7)), row 1 = -log(e^z7 / (e^z7 + e^z3 + e^z5 + e^z3))
    row0 = -(z[0, 3] - torch.logsumexp(z[0, [3, 5, 7]], 0))
    row1 = -(z[1, 7] - torch.logsumexp(z[1, [7, 3, 5, 3]], 0))
    got = output.sampled_loss(hidden, table, targets, negatives)
    assert got.item() == pytest.approx(((row0 + row1) / 2).item(), rel=1e-6)
    # with the correction: every logit z_j becomes z_j - log q_j, the target's too
    log_q = torch.log(torch.tensor([0.05, 0.05, 0.05, 0.4, 0.05, 0.1, 0.05, 0.15, 0.05, 0.05]))
    c = z - log_q
    row0 = -(c[0, 3] - torch.logsumexp(c[0, [3, 5, 7]], 0))
    row1 = -(c[1, 7] - torch.logsumexp(c[1, [7, 3, 5, 3]], 0))
    got = output.sampled_loss(hidden, table, targets, negatives, log_q)
    assert got.item() == pytest.approx(((row0 + row1) / 2).item(), rel=1e-6)


def plain_sampled_loss(output: TiedOutput, hidden, table, targets, negatives, log_q):
    """Sampled softmax from autograd ops: the formula of TiedOutput.sampled_loss's docstring, written out."""
    features = F.gelu(output.dense(hidden))
    logits = torch.cat([(features * table.weight[targets]).sum(1, keepdim=True) + output.bias[targets, None],
                        features @ table.weight[negatives].T + output.bias[negatives]], dim=1)
    logits = logits - torch.cat([log_q[targets, None], log_q[negatives].expand(len(targets), -1)], dim=1)
    logits[:, 1:] = logits[:, 1:].masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
    return F.cross_entropy(logits, torch.zeros_like(targets))


@pytest.mark.parametrize("m", [7, 20_000])  # one block of rows; several (786,432 // 20,000 = 39 rows a block)
def test_the_blocked_sampled_loss_has_the_value_and_gradients_of_the_plain_one(m):
    n_items = 300
    reference, table_a = tied_pair(n_items)
    blocked, table_b = copies(reference, table_a)
    hidden, targets = torch.randn(100, 8), torch.randint(0, n_items, (100,))
    negatives = torch.randint(0, n_items, (m,))  # with repeats and accidental hits
    log_q = torch.log_softmax(torch.randn(n_items), 0)
    expected = plain_sampled_loss(reference, hidden, table_a, targets, negatives, log_q)
    got = blocked.sampled_loss(hidden, table_b, targets, negatives, log_q)
    assert_same_loss_and_gradients(expected, got, (reference, table_a), (blocked, table_b), rel=1e-5, atol=1e-6)


def test_popularity_sampling_draws_items_in_proportion_to_train_interactions_plus_one():
    counts = np.array([0] * 9 + [89])  # q = 1/99 for items 0..8, 90/99 for item 9
    sampler = NegativeSampler(10, 5, counts, seed=0, device=torch.device("cpu"))
    draws = torch.cat([sampler.draw()[0] for _ in range(4000)]).numpy()
    share = np.bincount(draws, minlength=10) / len(draws)
    assert share[9] == pytest.approx(90 / 99, abs=0.01)
    assert share[:9] == pytest.approx(np.full(9, 1 / 99), abs=0.004)
    torch.testing.assert_close(sampler.draw()[1], torch.log(torch.tensor([1 / 99] * 9 + [90 / 99])))
    again = NegativeSampler(10, 5, counts, seed=0, device=torch.device("cpu"))
    assert again.draw()[0].tolist() == draws[:5].tolist()  # its own seeded generator: the same draws
    uniform = NegativeSampler(10, 5, None, seed=0, device=torch.device("cpu"))
    assert uniform.draw()[1] is None


class _Shapes(TorchDispatchMode):
    """Every tensor shape an op produced (forward and backward) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.shapes.update(tuple(t.shape) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        return out


@pytest.mark.parametrize("loss", ["sampled", "full"])
def test_a_sampled_step_holds_nothing_of_catalog_size_but_the_item_table_and_its_gradient(loss):
    n_items, dim = 5000, 8
    sessions = [np.arange(start, start + 12) for start in range(0, 4000, 40)]  # 100 sessions, 1,100 targets
    catalog = data.Catalog(item_ids=np.array([f"i{i}" for i in range(n_items)]), titles=[""] * n_items,
                           categories=[""] * n_items, popularity=np.ones(n_items, dtype=np.int64))
    split = data.Split(catalog, sessions, np.arange(len(sessions), dtype=float), [], np.zeros(0, dtype=np.int64))
    model = create("sasrec", embedding_dim=dim, heads=2, layers=1, max_epochs=1, max_validation_sessions=0,
                   batch_size=100, loss=loss, negatives=64).fit(split)  # builds the network and the sampler
    model.module.train()
    model.sampler = NegativeSampler(n_items, 64, np.ones(n_items), 0, torch.device("cpu"))
    (batch,) = model.epoch_batches(sessions, np.random.default_rng(0))
    with _Shapes() as seen:
        model.batch_loss(batch).backward()
    catalog_sized = {shape for shape in seen.shapes if any(side >= n_items for side in shape)}
    # the table (n_items + 1 rows with padding) and its gradient, its catalog rows, the output bias and its
    # gradient, and the sampler's (n_items,) log q
    allowed = {(n_items + 1, dim), (n_items, dim), (n_items,)}
    if loss == "sampled":
        assert catalog_sized <= allowed
        assert (n_items + 1, dim) in catalog_sized  # the check sees the backward: the table's gradient is there
    else:  # the full softmax scores blocks of rows against every item: what sampled softmax avoids
        assert any(len(shape) == 2 and shape[1] == n_items and shape[0] > dim for shape in catalog_sized)


# BERT4Rec with 90% of the items masked sits ~40 passes at a popularity-level plateau with sampled softmax (as
# with the full softmax at its own defaults: core/models/defaults.toml); half masked, it learns the walk in ~20.
SAMPLED_EXTRA = {"bert4rec": {"mask_probability": 0.5, "patience": 30}}


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "bert4rec"])
def test_a_tiny_model_trained_with_sampled_softmax_learns_that_b_follows_a(name, synthetic):
    # 30 items, 8 negatives a batch; the contract test's criterion (tests/test_recommender_contract.py)
    model = create(name, **{**TINY[name], **SAMPLED_EXTRA.get(name, {})}, loss="sampled", negatives=8)
    model.fit(synthetic.split)
    items, _ = model.recommend(synthetic.split.prompts, k=5)
    assert (items == synthetic.split.targets[:, None]).any(axis=1).mean() >= 0.8


def test_the_loss_options_are_in_the_key_only_when_changed():
    assert "loss" not in keyed_dict(model_class("sasrec").Config())  # saved full-softmax models keep their keys
    sampled = model_class("sasrec").Config(loss="sampled")
    assert keyed_dict(sampled)["loss"] == "sampled"
    assert label("sasrec", keyed_dict(sampled)) == "sasrec (loss=sampled)"
    with pytest.raises(Exception, match="negatives"):
        create("sasrec", negatives=0)


def test_ranks_shares_of_a_batch_give_the_gradient_of_the_whole_batch(synthetic):
    """What DDP computes, by hand: the mean over ranks of the gradients of each rank's ``shard_batch`` loss is
    the gradient of the one-process loss of the batch; a rank left without rows adds nothing."""
    model = create("sasrec", **{**TINY["sasrec"], "dropout": 0.0, "max_epochs": 1}).fit(synthetic.split)
    model.module.train()
    batch = model.epoch_batches(synthetic.split.train, np.random.default_rng(1))[0]
    params = list(model.module.parameters())

    def gradients(b) -> list[torch.Tensor]:
        model.module.zero_grad()
        model.batch_loss(b).backward()
        return [p.grad.clone() for p in params]

    whole = gradients(batch)
    for world in (2, 3, len(batch[0]) + 1):  # the last: one rank with no row
        parts = [gradients(model.shard_batch(batch, rank, world)) for rank in range(world)]
        for i, grad in enumerate(whole):
            torch.testing.assert_close(sum(part[i] for part in parts) / world, grad, rtol=1e-4, atol=1e-6)
    targets = model.targets_per_row(batch)
    tokens, weight = model.shard_batch(batch, 1, 2)
    assert len(tokens) == len(batch[0][1::2])
    assert weight == pytest.approx(batch[1] * 2 * targets[1::2].sum() / targets.sum())
    assert model.shard_batch(batch, len(targets), len(targets) + 1)[1] == 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# One model of each kind, dropout 0 (the ranks' dropout masks would differ from one process's), a loss each.
DATA_PARALLEL: list[tuple[str, dict[str, Any]]] = [
    ("sasrec", {**TINY["sasrec"], "dropout": 0.0, "max_epochs": 4, "patience": 2, "batch_size": 50}),
    ("gru4rec", {**TINY["gru4rec"], "dropout": 0.0, "max_epochs": 4, "loss": "sampled", "negatives": 8}),
    ("bert4rec", {**TINY["bert4rec"], "dropout": 0.0, "max_epochs": 4, "loss": "sampled", "negatives": 8}),
]


def fitted_history(name: str, options: dict[str, Any], split: data.Split) -> train.History:
    model = create(name, **options)
    assert isinstance(model, SequentialRecommender)
    return model.fit(split).history


def _data_parallel_process(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_WORLD_SIZE=str(world), LLMSEQ_TORCH_THREADS="1")
    assert train.init_distributed() == (rank, world)
    split = data.synthetic().split
    histories = {}
    for name, options in DATA_PARALLEL:
        history = fitted_history(name, options, split)
        histories[name] = {"loss": history.loss, "validation": history.validation, "best_epoch": history.best_epoch}
    (Path(folder) / f"rank{rank}.json").write_text(json.dumps(histories))
    torch.distributed.destroy_process_group()


def test_two_processes_train_the_loss_curve_of_one_with_the_same_global_batch(synthetic, tmp_path):
    torch.multiprocessing.spawn(_data_parallel_process, args=(2, free_port(), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for name, options in DATA_PARALLEL:
        one = fitted_history(name, options, synthetic.split)
        for got in ranks:
            assert len(got[name]["loss"]) == len(one.loss) == options["max_epochs"]
            np.testing.assert_allclose(got[name]["loss"], one.loss, rtol=1e-6)  # measured: ~5e-8
            np.testing.assert_allclose(got[name]["validation"], one.validation, rtol=1e-6)  # rank 0's, broadcast
            assert got[name]["best_epoch"] == one.best_epoch
        assert one.loss[-1] < one.loss[0]  # it did learn: the curves compared are not flat


def test_train_processes_2_runs_torchrun_only_rank_0_saves_and_plain_torchrun_loads_it(tmp_path):
    folder = write_tiny_dataset(tmp_path / "shop")
    env = {**os.environ, "LLMSEQ_CACHE": str(tmp_path / "cache"), "LLMSEQ_TORCH_THREADS": "1"}
    command = [sys.executable, "-m", "core", "train", "--dataset", str(folder), "--models", "sasrec",
               "--processes", "2", "--set", "max_epochs=2", "dropout=0", "embedding_dim=16", "heads=2", "layers=1"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("sasrec on ")]
    assert len(lines) == 1 and "trained in" in lines[0] and "on 2 processes" in lines[0]
    saved = [p for p in (tmp_path / "cache" / "models").rglob("state.safetensors")]
    assert len(saved) == 1
    from core.models import load

    model = load(saved[0].parent)
    assert len(model.history.loss) == 2
    # plain torchrun works too; rank 0 finds the saved model and tells the other process not to train
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                *command[2:command.index("--processes")], *command[command.index("--processes") + 2:]]
    again = subprocess.run(torchrun, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [line for line in again.stdout.splitlines() if line.startswith("sasrec on ")] == [
        lines[0].split(": trained in")[0] + f": already trained -> {saved[0].parent}"]


def test_processes_refuses_a_model_that_cannot_train_data_parallel(capsys):
    from core.cli import main

    assert main(["train", "--dataset", "ml-100k", "--models", "vsknn", "--processes", "2"]) == 2
    assert "vsknn cannot train data-parallel" in capsys.readouterr().err
    assert main(["train", "--dataset", "ml-100k", "--models", "sasrec", "--processes", "0"]) == 2
