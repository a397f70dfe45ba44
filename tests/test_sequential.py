"""The sequential models' shared parts: padding, attention masks, the training loop, LLM2X initialisation."""

import numpy as np
import pytest
import torch

from core import train
from core.models import create
from core.models.sequential import attention_mask, pad_batch

SMALL = {"embedding_dim": 16, "max_epochs": 2, "patience": 1, "init_std": 0.1}
NETWORK = {"sasrec": {"heads": 2, "layers": 1}, "bert4rec": {"heads": 2, "layers": 1, "masked_copies": 1},
           "gru4rec": {"hidden_dim": 8}}


@pytest.fixture(scope="module", params=sorted(NETWORK))
def small(request, synthetic):
    return create(request.param, **SMALL, **NETWORK[request.param]).fit(synthetic.split)


def test_padding_uses_its_own_index_never_an_item():
    tokens, lengths = pad_batch([np.array([3, 4, 5]), np.array([7]), np.array([], dtype=np.int64)], 2, pad=10)
    assert tokens.tolist() == [[4, 5], [10, 7], [10, 10]] and lengths.tolist() == [2, 1, 0]
    right, _ = pad_batch([np.array([3, 4, 5]), np.array([7])], 5, pad=10, left=False)
    assert right.tolist() == [[3, 4, 5], [7, 10, 10]]


def test_padding_never_marks_the_highest_item_as_seen(small, synthetic):
    # The authors' code mapped padding to an item id, which filtered that item from every short session.
    last = synthetic.catalog.n_items - 1
    items, _ = small.recommend([[0], [5, 6]], k=synthetic.catalog.n_items - 2)
    assert last in items[0] and last in items[1]
    assert 0 not in items[0] and not {5, 6} & set(items[1].tolist())


def test_a_sessions_scores_do_not_depend_on_the_padding_around_it(small, synthetic):
    short, long = np.array([3, 4]), np.arange(10, 22) % synthetic.catalog.n_items
    alone = small.score([short])[0]
    beside_a_long_one = small.score([short, long])[0]
    np.testing.assert_allclose(alone, beside_a_long_one, rtol=1e-5, atol=1e-5)


def test_attention_never_looks_at_padding_or_ahead():
    tokens = torch.tensor([[9, 9, 1, 2]])  # 9 = padding
    causal = attention_mask(tokens, pad=9, causal=True)[0, 0]
    assert causal[2].tolist() == [False, False, True, False]  # item 1 sees itself only
    assert causal[3].tolist() == [False, False, True, True]
    assert causal[0].tolist() == [True, False, False, False]  # a padding row sees itself: finite, unused
    both = attention_mask(tokens, pad=9, causal=False)[0, 0]
    assert both[2].tolist() == [False, False, True, True]


def test_hold_out_is_ten_percent_at_most_500():
    rng = np.random.default_rng(0)
    sessions = [np.array([i, i + 1]) for i in range(8000)]
    kept, held = train.hold_out(sessions, 0.1, 500, rng)
    assert len(held) == 500 and len(kept) == 7500
    assert {s[0] for s in kept}.isdisjoint({s[0] for s in held})
    kept, held = train.hold_out(sessions[:200], 0.1, 500, rng)
    assert len(held) == 20 and len(kept) == 180


def test_early_stopping_restores_the_best_epoch():
    module = torch.nn.Linear(2, 1)
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.9])  # best after epoch 2; patience 2 stops after epoch 4
    snapshots = []

    def validate():
        snapshots.append(module.weight.detach().clone())
        return next(scores)

    history = train.train(module, epoch_batches=lambda rng: [torch.ones(4, 2)] * 3,
                          batch_loss=lambda x: module(x).pow(2).mean(), validate=validate, learning_rate=0.1,
                          weight_decay=0.0, clip_norm=1.0, max_epochs=10, patience=2, seed=0)
    assert len(history.validation) == 4 and history.best_epoch == 1
    assert torch.equal(module.weight, snapshots[1]) and not torch.equal(module.weight, snapshots[3])


def test_history_is_saved_with_the_weights(small, tmp_path):
    from core.models import load as load_saved

    loaded = load_saved(small.save(tmp_path / small.name))
    assert loaded.history.validation == small.history.validation
    assert loaded.history.best_epoch == small.history.best_epoch


@pytest.mark.parametrize("name", ["llm2sasrec", "llm2gru4rec"])
def test_llm_vectors_fill_the_item_rows_only(name, synthetic):
    from core.embeddings import item_embeddings
    from core.reduce import reduce_dimensions

    model = create(name, **SMALL, **NETWORK[name[4:]])
    model.n_items = synthetic.catalog.n_items
    model.module = model.build(model.n_items)
    model.copy_llm_vectors(synthetic.split)
    table = model.module.item_table.weight.detach().numpy()
    expected = reduce_dimensions(item_embeddings(synthetic.catalog), "pca", dim=16)
    np.testing.assert_allclose(table[: model.n_items], expected, rtol=1e-6)
    assert not table[model.n_items].any(), "the padding row stays zero"

    shuffled = create(name, shuffle_llm_vectors=True, **SMALL, **NETWORK[name[4:]])
    shuffled.n_items = model.n_items
    shuffled.module = shuffled.build(model.n_items)
    vectors = shuffled.llm_vectors(synthetic.split)
    assert not np.allclose(vectors, expected)
    assert sorted(map(tuple, vectors.round(5))) == sorted(map(tuple, expected.round(5)))


def test_llm_std_rescales_the_vectors_without_changing_their_directions(synthetic):
    from core.embeddings import item_embeddings
    from core.reduce import reduce_dimensions

    model = create("llm2sasrec", llm_std=0.02, **SMALL, **NETWORK["sasrec"])
    model.n_items = synthetic.catalog.n_items
    model.module = model.build(model.n_items)
    vectors = model.llm_vectors(synthetic.split)
    raw = reduce_dimensions(item_embeddings(synthetic.catalog), "pca", dim=16)
    assert vectors.std() == pytest.approx(0.02, rel=1e-4)
    np.testing.assert_allclose(vectors, raw * (0.02 / raw.std()), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
def test_attention_dropout_zero_leaves_the_attention_weights_whole(name):
    """attention_dropout=0 (the authors' Keras layers) keeps dropout on the sublayer outputs only: in training mode
    the attention of a block is then deterministic; by default it drops weights at `dropout`, as it always did."""
    from core.config import keyed_dict

    torch.manual_seed(0)
    x, allowed = torch.randn(3, 6, 8), attention_mask(torch.tensor([[9, 9, 1, 2, 3, 4]] * 3), pad=9, causal=True)
    blocks = {}
    for setting in (None, 0.0):
        network = create(name, embedding_dim=8, heads=2, dropout=0.5, attention_dropout=setting).build(10).train()
        blocks[setting] = network.blocks[0]
    assert blocks[None].attention_dropout == 0.5 and blocks[0.0].attention_dropout == 0.0
    torch.testing.assert_close(blocks[0.0].attention(x, allowed), blocks[0.0].attention(x, allowed))
    assert not torch.allclose(blocks[None].attention(x, allowed), blocks[None].attention(x, allowed))
    # saved models keep their store key at the default; a model with the option set is another model
    assert "attention_dropout" not in keyed_dict(create(name).config)
    assert keyed_dict(create(name, attention_dropout=0.0).config)["attention_dropout"] == 0.0


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "bert4rec"])
def test_without_an_output_bias_the_item_scores_carry_no_learned_prior(name, synthetic):
    """output_bias=False (the authors' Keras head): the per-item bias is never trained, so it stays zero; by default
    it learns (popular items get a higher prior) and a saved model of either kind loads with the same arrays."""
    from core.config import keyed_dict

    tiny = {"embedding_dim": 16, "max_epochs": 2, "max_validation_sessions": 0, "learning_rate": 0.01}
    if name != "gru4rec":
        tiny["heads"] = 2
    models = {setting: create(name, output_bias=setting, **tiny).fit(synthetic.split) for setting in (True, False)}
    biases = {setting: model.module.output.bias.detach() for setting, model in models.items()}
    assert torch.count_nonzero(biases[False]) == 0 and torch.count_nonzero(biases[True]) > 0
    assert set(models[True].state()) == set(models[False].state())
    assert "output_bias" not in keyed_dict(create(name).config)
