"""Issue 12's training: the blocked softmax cross-entropy, the device and precision options, length-bucketed
batches, BERT4Rec's passes, the latest-sessions early-stopping set, per-dataset defaults and ``reproduce``."""

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from core import train
from core.cli import main
from core.common import ConfigError
from core.models import create, model_class
from core.models.defaults import DEFAULTS_FILE, chosen_by, dataset_defaults, default_config
from core.models.sequential import TiedOutput, batch_rows

TINY_SASREC = {"embedding_dim": 16, "heads": 2, "layers": 1, "max_epochs": 3, "patience": 1, "batch_size": 32,
               "learning_rate": 0.01, "init_std": 0.1}


@pytest.mark.parametrize("n_items", [50, 20_000])  # one block of rows; several blocks (786,432 // 20,000 = 39)
def test_blocked_cross_entropy_has_the_value_and_gradients_of_the_full_one(n_items):
    torch.manual_seed(0)
    reference, blocked = TiedOutput(8, 6, n_items), TiedOutput(8, 6, n_items)
    blocked.load_state_dict(reference.state_dict())
    table_a, table_b = torch.nn.Embedding(n_items + 1, 6), torch.nn.Embedding(n_items + 1, 6)
    table_b.load_state_dict(table_a.state_dict())
    with torch.no_grad():
        reference.bias.normal_()
        blocked.bias.copy_(reference.bias)
    hidden = torch.randn(100, 8)
    targets = torch.randint(0, n_items, (100,))
    expected = F.cross_entropy(reference(hidden, table_a), targets)
    got = blocked.loss(hidden, table_b, targets)
    (2 * expected).backward()  # a non-unit upstream gradient is scaled through
    (2 * got).backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    for a, b in [(reference.dense.weight, blocked.dense.weight), (reference.bias, blocked.bias),
                 (table_a.weight, table_b.weight)]:
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6)
    assert table_b.weight.grad[n_items].abs().sum() == 0  # the padding row is never scored


def test_device_auto_picks_cuda_only_when_torch_sees_one(monkeypatch):
    assert train.resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train.resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="'device' is 'cuda', but torch sees no CUDA GPU"):
        train.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert train.resolve_device("auto").type == "cuda" and train.resolve_device("cuda").type == "cuda"


def test_training_on_a_missing_gpu_is_refused_in_one_sentence(synthetic, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU here; use 'auto' or 'cpu'"):
        create("sasrec", device="cuda", **TINY_SASREC).fit(synthetic.split)
    with pytest.raises(ConfigError, match="option 'device' must be one of"):
        create("sasrec", device="tpu")


def test_precision_auto_is_float32_on_a_cpu_and_bf16_on_a_bf16_gpu(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert train.autocast_dtype("auto", cpu) is None and train.autocast_dtype("float32", cpu) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert train.autocast_dtype("auto", cuda) == torch.bfloat16
    assert train.autocast_dtype("float32", cuda) is None
    monkeypatch.setattr(train, "bf16_supported", lambda device: False)
    with pytest.raises(ConfigError, match="no native bf16"):
        train.autocast_dtype("bfloat16", cpu)
    assert train.autocast_dtype("auto", cuda) is None


@pytest.mark.skipif(not train.bf16_supported(torch.device("cpu")), reason="this CPU has no native bf16")
def test_a_bf16_training_step_learns_the_tiny_shop(synthetic):
    model = create("sasrec", precision="bfloat16", **{**TINY_SASREC, "max_epochs": 6}).fit(synthetic.split)
    items, _ = model.recommend([[3, 4]], 1)
    assert items[0, 0] == 5  # the tiny shop walks i, i+1, ...: the next item is known


def test_length_buckets_keep_every_row_once_and_batch_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 51, size=1000)
    for by_length in (False, True):
        batches = batch_rows(lengths, 32, np.random.default_rng(1), by_length, chunk_batches=8)
        rows = np.concatenate(batches)
        assert sorted(rows.tolist()) == list(range(1000)) and max(len(b) for b in batches) == 32
        spread = np.mean([np.ptp(lengths[b]) for b in batches])
        if by_length:
            assert spread < 12  # sorted within chunks of 8 batches (256 rows over 50 lengths): ~50 / 8 each
        else:
            assert spread > 35  # random batches span most of 1..50
    first = [b.tolist() for b in batch_rows(lengths, 32, np.random.default_rng(1), True)]
    again = [b.tolist() for b in batch_rows(lengths, 32, np.random.default_rng(1), True)]
    assert first == again  # seeded


def test_a_bert4rec_pass_shows_each_session_once_with_the_authors_mix_of_copies(synthetic):
    model = create("bert4rec", embedding_dim=16, heads=2, layers=1, masked_copies=3, mask_probability=0.5)
    model.n_items = synthetic.catalog.n_items
    model.module = model.build(model.n_items)
    sessions = [s for s in synthetic.split.train if len(s) >= 2]
    batches = model.epoch_batches(sessions, np.random.default_rng(0))
    rows = [(inputs[i], targets[i]) for inputs, targets, _ in batches for i in range(len(inputs))]
    assert len(rows) <= len(sessions)  # each session at most once (a copy with nothing masked is left out)
    mask = model.module.mask
    next_item = [t for i, t in rows if (i == mask).sum() == 1 and i[-1] == mask]
    assert 0.15 < len(next_item) / len(rows) < 0.4  # 1 / (1 + masked_copies) = 0.25 next-item copies
    only_last = create("bert4rec", embedding_dim=16, heads=2, layers=1, masked_copies=0)
    only_last.n_items, only_last.module = model.n_items, model.module
    for inputs, targets, weight in only_last.epoch_batches(sessions, np.random.default_rng(0)):
        assert (inputs == mask).sum().item() == len(inputs) and (inputs[:, -1] == mask).all()


def test_batch_weights_make_every_target_of_an_epoch_count_the_same(synthetic):
    from core.models.sequential import target_weights

    assert target_weights([10, 30]) == [0.5, 1.5] and target_weights([0, 0]) == [1.0, 1.0]
    model = create("sasrec", max_length=5, batch_size=2, length_buckets=True)
    model.n_items = 100
    sessions = [np.array([1, 2]), np.array([3, 4]), np.arange(10, 20), np.arange(20, 30)]
    batches = model.epoch_batches(sessions, np.random.default_rng(0))
    # bucketed: the two 2-item sessions (1 target each) together, the two long ones (5 targets each) together
    assert sorted((tokens.shape[1], weight) for tokens, weight in batches) == [(2, 2 / 6), (6, 10 / 6)]
    unweighted = create("sasrec", max_length=5, batch_size=2, length_buckets=True, weigh_by_targets=False)
    unweighted.n_items = 100
    assert sorted((t.shape[1], w) for t, w in unweighted.epoch_batches(sessions, np.random.default_rng(0))) \
        == [(2, 1.0), (6, 1.0)]
    assert target_weights([10, 30], weigh=False) == [1.0, 1.0]


def test_warmup_raises_the_learning_rate_linearly_then_holds_it():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.8)
    schedule = train.linear_warmup(4)(optimizer, 100)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])


def test_a_model_with_warmup_takes_smaller_first_steps(synthetic):
    """The first AdamW step moves a weight by ~lr; with warm-up over 10 steps by ~lr / 10."""
    moved = {}
    for steps in (0, 10):
        model = create("sasrec", **{**TINY_SASREC, "max_epochs": 1, "batch_size": 10_000, "dropout": 0.0,
                                    "max_validation_sessions": 0, "warmup_steps": steps, "weight_decay": 0.0})
        model.n_items = synthetic.catalog.n_items
        torch.manual_seed(0)
        before = model.build(model.n_items).item_table.weight.detach().clone()
        model.fit(synthetic.split)  # one batch: one step
        moved[steps] = (model.module.item_table.weight.detach() - before).abs().max().item()
    assert moved[0] == pytest.approx(0.01, rel=0.05) and moved[10] == pytest.approx(0.001, rel=0.05)


def test_latest_hold_out_takes_the_last_sessions_as_the_test_split_is_taken():
    sessions = [np.array([i % 5, (i + 1) % 5]) for i in range(40)] + [np.array([0, 99]), np.array([1, 2, 98])]
    kept, held = train.hold_out(sessions, 0.1, 500, np.random.default_rng(0), latest=True)
    assert len(kept) == 42 - 5
    # the last five sessions: item 99 and 98 never occur in the kept ones, so they are dropped as in the test
    # split, and [0, 99] falls below two items
    assert [s.tolist() for s in held] == [[2, 3], [3, 4], [4, 0], [1, 2]]
    _, random_held = train.hold_out(sessions, 0.1, 500, np.random.default_rng(0), latest=False)
    assert len(random_held) == 5


def test_latest_targets_withholds_only_the_last_items_and_trains_on_the_prompts():
    sessions = [np.array([i % 5, (i + 1) % 5]) for i in range(40)] + [np.array([0, 7]), np.array([7, 8, 9]),
                                                                       np.array([1, 2, 3])]
    kept, held = train.hold_out(sessions, 0.1, 500, np.random.default_rng(0), latest=True, keep_prompts=True)
    # the last five sessions are held out; the prompts with 2+ items ([7, 8], [1, 2]) stay in training
    assert len(kept) == 38 + 2 and [s.tolist() for s in kept[-2:]] == [[7, 8], [1, 2]]
    # 7 is a target now seen (in a kept prompt); 9 never is, so [7, 8, 9] is not scored at all
    assert [s.tolist() for s in held] == [[3, 4], [4, 0], [0, 7], [1, 2, 3]]
    _, without = train.hold_out(sessions, 0.1, 500, np.random.default_rng(0), latest=True)
    assert [s.tolist() for s in without] == [[3, 4], [4, 0], [1, 2, 3]]  # 7, 8, 9 unseen: [0, 7] falls to [0]


def test_early_stopping_holds_out_random_sessions_by_default_or_the_latest(synthetic):
    assert model_class("sasrec").Config().early_stopping_set == "random"  # the paper's
    for setting in ("latest", "latest_targets", "random"):
        model = create("sasrec", early_stopping_set=setting, **TINY_SASREC).fit(synthetic.split)
        assert len(model.history.validation) >= 1 and model.history.best_epoch >= 0


def test_tuned_defaults_are_valid_options_each_with_the_fold_figure_that_chose_it():
    import tomllib

    table = tomllib.loads(DEFAULTS_FILE.read_text())
    assert "beauty" in table
    for dataset, models in table.items():
        for name, options in models.items():
            default_config(name, dataset)  # raises ConfigError for an unknown option or a bad value
            assert options and all(set(entry) == {"value", "fold"} and "NDCG@20" in entry["fold"]
                                   for entry in options.values()), (dataset, name)


def test_an_llm2_twin_starts_from_its_vanilla_models_tuned_values():
    sasrec = dataset_defaults("sasrec", "beauty")
    assert sasrec and dataset_defaults("llm2sasrec", "beauty").items() >= sasrec.items()
    assert chosen_by("llm2sasrec", "beauty").keys() >= sasrec.keys()
    assert dataset_defaults("sasrec", "beauty", "paper") == {} and dataset_defaults("sasrec", "ml-100k") == {}
    assert default_config("sasrec", "beauty", "paper") == model_class("sasrec").Config()
    with pytest.raises(ConfigError, match="unknown preset 'best'"):
        dataset_defaults("sasrec", "beauty", "best")


def test_summaries_give_mean_sample_std_and_every_run():
    from core.reproduce import summarise

    out = summarise([0.01, 0.02, 0.03])
    assert out["mean"] == pytest.approx(0.02) and out["std"] == pytest.approx(0.01) and out["runs"] == [0.01, 0.02,
                                                                                                         0.03]
    assert summarise([0.5])["std"] is None


def test_reproduce_runs_each_row_over_seeds_and_continues_where_it_stopped(tmp_path, capsys, monkeypatch):
    from tiny_data import write_tiny_dataset

    folder = write_tiny_dataset(tmp_path / "shop", n_sessions=200)
    output = tmp_path / "table.json"
    sets = [f"sasrec.{k}={v}" for k, v in TINY_SASREC.items()]
    args = ["reproduce", "--dataset", str(folder), "--models", "popularity,sasrec", "--seeds", "0,1",
            "--output", str(output), "--set", *sets]
    assert main(args) == 0
    summary = json.loads(output.read_text())
    popularity, sasrec = summary["models"]["popularity"], summary["models"]["sasrec"]
    assert popularity["seeds"] == [None] and popularity["NDCG@20"]["std"] is None  # deterministic: one run
    runs = sasrec["NDCG@20"]["runs"]
    assert sasrec["seeds"] == [0, 1] and len(runs) == 2 and sasrec["NDCG@20"]["mean"] == pytest.approx(np.mean(runs))
    assert sasrec["NDCG@20"]["std"] == pytest.approx(np.std(runs, ddof=1))
    assert sasrec["NDCG@20"]["mean"] > 2 * popularity["NDCG@20"]["mean"]  # the shop's next item is learnable
    table = output.with_suffix(".md").read_text()
    assert "| sasrec | 2 |" in table and "python -m core reproduce" in table
    assert "--set sasrec.embedding_dim=16" in table  # the command line, options included
    fits = []
    monkeypatch.setattr(model_class("sasrec"), "fit", lambda self, *a, **k: fits.append(1))
    assert main(args) == 0  # everything is stored: nothing is fitted again
    assert fits == [] and json.loads(output.read_text())["models"]["sasrec"]["NDCG@20"]["runs"] == runs


def test_reproduce_refuses_bad_arguments_before_training(tmp_path, capsys):
    out = str(tmp_path / "t.json")
    assert main(["reproduce", "--models", "sasrec,gpt5", "--output", out]) == 2
    assert "unknown row(s) ['gpt5']" in capsys.readouterr().err
    assert main(["reproduce", "--seeds", "a,b", "--output", out]) == 2
    assert "--seeds expects comma-separated integers" in capsys.readouterr().err
    assert main(["reproduce", "--models", "sasrec", "--set", "dropout=2", "--output", out]) == 2
    assert "sasrec: option 'dropout' must be in [0, 1), got 2" in capsys.readouterr().err
    assert main(["reproduce", "--models", "", "--output", out]) == 2
    assert "--models names no row" in capsys.readouterr().err
    assert main(["reproduce", "--models", "popularity", "--output", str(tmp_path / "t.md")]) == 2
    assert "give a .json file" in capsys.readouterr().err
