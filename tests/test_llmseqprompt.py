"""LLMSeqPrompt: training data, the name-to-catalog mapping (hand-checked cases), the local backends.

The contract suite (tests/test_recommender_contract.py) runs the from-scratch model on the synthetic data;
here: the paper's prompt, the mapping's rules, a user's model folder fine-tuned with LoRA, and the
evaluation's hallucination rate.
"""

import json

import numpy as np
import pytest

from core.data import Catalog
from core.models import create
from core.models import load as load_saved
from core.models.llmseqprompt.generator import LLMError
from core.models.llmseqprompt.mapping import NameMapper
from core.models.llmseqprompt.prompts import (
    SYSTEM_PROMPT,
    chat_messages,
    normalise_title,
    session_examples,
    split_examples,
)

TINY = dict(vocab_size=300, n_embd=64, n_layer=2, n_head=2, context_tokens=64, epochs=40, patience=4,
            batch_size=8, learning_rate=3e-3)


# ------------------------------------------------------------------------------------------ prompts
def test_normalisation_is_the_same_for_titles_and_names():
    assert normalise_title("  Nivea  Soft\tCream ") == normalise_title("nivea soft cream")
    assert normalise_title('"Nivea Soft Cream"') == "nivea soft cream"
    assert normalise_title("1. Nivea Soft Cream") == "nivea soft cream"
    assert normalise_title("ＮＩＶＥＡ") == "nivea"  # NFKC folds full-width letters
    assert normalise_title("Nivea Soft Cream 2") != normalise_title("Nivea Soft Cream")


def test_examples_skip_untitled_items_and_cut_long_prompts():
    catalog = Catalog(item_ids=np.array(["a", "b", "c", "d", "e"], dtype=object),
                      titles=["A", "B", "", "D", "E"], categories=[""] * 5, popularity=np.ones(5, np.int64))
    sessions = [np.array([0, 1, 3, 4]), np.array([0, 2, 1]), np.array([4]), np.array([3, 0])]
    examples = session_examples(sessions, catalog, max_prompt_items=2)
    assert [(e.prompt, e.target) for e in examples] == [((1, 3), 4), ((3,), 0)]


def test_hold_out_is_seeded_and_takes_the_fraction():
    examples = list(range(100))
    train, validation = split_examples(examples, 0.2, seed=7)
    assert len(validation) == 20 and sorted(train + validation) == examples
    assert split_examples(examples, 0.2, seed=7) == (train, validation)
    assert split_examples(examples, 0.2, seed=8)[1] != validation
    assert len(split_examples([1, 2], 0.2, seed=0)[1]) == 1  # at least one held out


def test_chat_record_is_the_papers_genitem_prompt():
    messages = chat_messages(["Lipstick Red", "Mascara"], "Eyeliner")
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert SYSTEM_PROMPT.startswith("Provide a unique item recommendation that is complementary")
    assert messages[1] == {"role": "user", "content": "The user's item list:\nLipstick Red\nMascara"}
    assert messages[2] == {"role": "assistant", "content": "Eyeliner"}


# ------------------------------------------------------------------------------------------ mapping
TITLES = ["Red Lipstick", "Pink Lipstick", "Black Mascara", "Brown Mascara", "Nail Polish", "Red Lipstick"]
# 2-d unit vectors: lipsticks near (1, 0), mascaras near (0, 1), nail polish in between.
ANGLES = np.radians([0, 10, 90, 80, 45, 1])
VECTORS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)
POPULARITY = np.array([5, 4, 3, 2, 1, 9])


def encoder(texts):
    # A made-up name is embedded by keyword: "lip..." near the lipsticks, anything else near the mascaras.
    return np.array([[np.cos(np.radians(5)), np.sin(np.radians(5))] if "lip" in t.lower()
                     else [np.cos(np.radians(85)), np.sin(np.radians(85))] for t in texts], dtype=np.float32)


@pytest.fixture()
def mapper():
    return NameMapper(TITLES, VECTORS, POPULARITY, encoder)


def test_exact_unique_names_go_in_directly_in_sampling_order(mapper):
    (mapped,) = mapper.map([["black mascara", "Pink Lipstick"]], [[]], k=2)
    assert mapped.items == [2, 1]
    assert mapped.counts == {"exact": 2, "duplicated": 0, "hallucinated": 0}


def test_a_shared_title_maps_to_the_more_popular_item(mapper):
    (mapped,) = mapper.map([["Red Lipstick"]], [[]], k=1)
    assert mapped.items == [5]  # items 0 and 5 share the title; 5 is more popular


def test_duplicates_and_hallucinations_are_replaced_after_the_direct_hits(mapper):
    names = ["Pink Lipstick", "Blue Lipgloss", "Black Mascara", "Black Mascara", "Sparkly Thing"]
    (mapped,) = mapper.map([names], [[4]], k=5)
    assert mapped.kinds == ["exact", "hallucinated", "duplicated", "duplicated", "hallucinated"]
    assert mapped.counts == {"exact": 1, "duplicated": 2, "hallucinated": 2}
    # Direct: Pink Lipstick (1). Then, in sampling order, nearest free neighbours:
    # "Blue Lipgloss" (5°) -> Red Lipstick 5 (1°) or 0 (0°): 0 is nearer to 5°? |5-0|=5, |5-1|=4 -> item 5;
    # "Black Mascara" #1 -> itself (2); #2 -> Brown Mascara (3); "Sparkly Thing" (85°) -> nail polish is
    # blocked by the prompt, so the last free item, Red Lipstick 0.
    assert mapped.items == [1, 5, 2, 3, 0]
    assert mapped.replaced_by == {1: 5, 2: 2, 3: 3, 4: 0}


def test_a_prompt_item_named_again_counts_as_duplicate_and_is_never_listed(mapper):
    (mapped,) = mapper.map([["Nail Polish", "Black Mascara"]], [[4]], k=3)
    assert mapped.kinds == ["duplicated", "exact"]
    assert 4 not in mapped.items and mapped.items[0] == 2


def test_lists_longer_than_the_samples_are_filled_without_duplicates(mapper):
    (mapped,) = mapper.map([["Black Mascara"]], [[0]], k=5)
    assert mapped.items[0] == 2 and len(set(mapped.items)) == 5 and 0 not in mapped.items
    assert mapped.items[1] == 3  # nearest to the sampled names' centre (mascara)


def test_only_hallucinated_names_are_embedded(mapper):
    seen = []
    mapper.encoder = lambda texts: (seen.extend(texts), encoder(texts))[1]
    mapper.map([["Black Mascara", "Black Mascara", "Lip Oil", "Lip Oil"]], [[]], k=4)
    assert seen == ["Lip Oil"]  # once per distinct name; catalog titles use the item vectors


# ------------------------------------------------------------------------------------------ local backend
@pytest.fixture(scope="module")
def scratch(synthetic):
    return create("llmseqprompt", **TINY).fit(synthetic.split)


def test_from_scratch_model_is_labelled_honestly(scratch):
    assert "trained from scratch" in scratch.label and "not a pretrained LLM" in scratch.label


def test_generation_counts_count_every_sampled_name(scratch, synthetic):
    from core.evaluate import GENERATION_KINDS, generation_rates

    start = len(scratch.generation_counts())
    mapped = scratch.generate(synthetic.split.prompts[:6], k=5)
    assert all(len(m.names) == 20 for m in mapped)
    counts = scratch.generation_counts()[start:]
    assert len(counts) == 6
    for count, m in zip(counts, mapped):
        assert sum(count[kind] for kind in GENERATION_KINDS) == 20 == sum(m.counts.values())
        assert count["answers"] == 20 and count["parse_fallback"] == 0
    assert sum(generation_rates(counts).values()) == pytest.approx(1.0)


def test_evaluation_reports_the_hallucination_rate(scratch, synthetic):
    from core.evaluate import evaluate_model

    result = evaluate_model(scratch, synthetic.split)
    assert 0.0 <= result["metrics"]["hallucination_rate"] <= 1.0
    assert len(result["generation_per_session"]["hallucinated"]) == synthetic.split.n_test
    assert result["metrics"]["HR@20"] >= 0.8  # the tiny model learned i -> i+1


def tiny_hf_folder(path, titles):
    """A user's own (here: untrained, tiny) GPT-2 checkpoint with a fast tokenizer, saved like any HF model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(list(titles) + ["The user's item list", "Recommendation"],
                            trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    tokenizer.save_pretrained(path)
    GPT2LMHeadModel(GPT2Config(vocab_size=raw.get_vocab_size(), n_positions=512, n_embd=32, n_layer=1,
                               n_head=2)).save_pretrained(path)
    return path


def test_a_users_model_folder_is_fine_tuned_with_lora(synthetic, tmp_path):
    folder = tiny_hf_folder(tmp_path / "my-gpt2", synthetic.catalog.titles)
    model = create("llmseqprompt", model_folder=str(folder), epochs=1, batch_size=16, max_prompt_items=3,
                   n_samples=4, context_tokens=512)
    model.fit(synthetic.split)
    assert "LoRA" in model.label
    losses = model.generator.history["validation_loss"]
    assert len(losses) == 1 and np.isfinite(losses[0])
    state = model.state()
    assert any("lora_" in key for key in state) and not any("wte" in key for key in state)  # adapter only
    prompts = synthetic.split.prompts[:4]
    items, scores = model.recommend(prompts, k=5)
    assert items.shape == (4, 5) and all(len(set(row)) == 5 for row in items.tolist())
    saved = model.save(tmp_path / "saved")
    loaded = load_saved(saved)
    assert np.array_equal(loaded.recommend(prompts, k=5)[0], items)
    assert json.loads((saved / "config.json").read_text())["config"]["model_folder"] == str(folder)


def test_a_folder_that_is_not_a_model_says_so(synthetic, tmp_path):
    model = create("llmseqprompt", model_folder=str(tmp_path))
    with pytest.raises(LLMError, match="not a Hugging Face model folder"):
        model.fit(synthetic.split)
