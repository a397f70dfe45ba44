"""LLMSeqPrompt's GenList, Classify and Rank tasks (core/models/llmseqprompt/tasks.py): prompt builders,
training answers and the list parser with known answers; the ranked mapping; each task end to end with the
local from-scratch model (tiny) on the synthetic data. The OpenAI path of each task: tests/test_openai_finetune.py.
"""

import numpy as np
import pytest

from core.evaluate import GENERATION_KINDS, generation_rates
from core.models import create
from core.models import load as load_saved
from core.models.llmseqprompt.mapping import NameMapper
from core.models.llmseqprompt.tasks import (
    Clusters,
    Parsed,
    Prompt,
    Task,
    expand_clusters,
    genlist_answer,
    parse_list,
    rank_answer,
    rank_candidates,
)
from core.picks import generation_note


# ------------------------------------------------------------------------------------------ prompts
def test_list_prompts_wrap_the_items_in_markers_and_number_the_answer():
    prompt = Prompt(("Red Lipstick", "Mascara"), ("Nail Polish", "Eyeliner"))
    genlist = Task("genlist")
    assert genlist.user_text(prompt) == "The user's item list:\nBEGIN\nRed Lipstick\nMascara\nEND"
    assert genlist.answer_text(["Eyeliner", "Blush"]) == "BEGIN\n1. Eyeliner\n2. Blush\nEND"
    rank = Task("rank")
    assert rank.user_text(prompt) == ("The user's item list:\nBEGIN\nRed Lipstick\nMascara\nEND\n"
                                      "The candidates:\nBEGIN\nNail Polish\nEyeliner\nEND")
    assert rank.user_text(prompt, with_candidates=False) == rank.user_text(prompt)  # rank always needs them
    classify = Task("classify")
    assert "The category list:\nBEGIN\nNail Polish\nEyeliner\nEND" in classify.user_text(prompt)
    assert classify.user_text(prompt, with_candidates=False) == genlist.user_text(prompt)
    messages = rank.messages(prompt, ["Eyeliner", "Nail Polish"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[2]["content"] == "BEGIN\n1. Eyeliner\n2. Nail Polish\nEND"
    assert Task("genitem").messages(prompt, ["Eyeliner"])[2]["content"] == "Eyeliner"  # GenItem: unchanged


# ------------------------------------------------------------------------------------------ parser
@pytest.mark.parametrize("text, names, outcome", [
    ("BEGIN\n1. Red Lipstick\n2. Mascara\nEND", ["Red Lipstick", "Mascara"], "ok"),
    ("Sure!\nBEGIN\n1) Red Lipstick\n 2.  Mascara \nEND\nHope this helps", ["Red Lipstick", "Mascara"], "ok"),
    ("BEGIN\n1. Red Lipstick\n2. Mas", ["Red Lipstick", "Mas"], "fallback"),  # cut short: no END
    ("1. Red Lipstick\n2. Mascara", ["Red Lipstick", "Mascara"], "fallback"),  # no markers
    ("BEGIN\n- Red Lipstick\n* Mascara\nEND", ["Red Lipstick", "Mascara"], "fallback"),  # bullets, no numbers
    ("Red Lipstick; Mascara; Blush", ["Red Lipstick", "Mascara", "Blush"], "fallback"),  # one line
    ("BEGIN\n1. \"Red Lipstick\"\n2.\nEND", ["Red Lipstick"], "ok"),  # quotes stripped, an empty line skipped
    ("BEGIN\nEND", [], "failed"),
    ("", [], "failed"),
    ("BEGIN\n1.\n2.\nEND", [], "failed"),
])
def test_the_parser_reads_numbered_lines_with_fallbacks(text, names, outcome):
    assert parse_list(text) == Parsed(names, outcome)


def test_the_parser_never_raises_on_malformed_answers():
    rng = np.random.default_rng(0)
    alphabet = list("BEGINeasd.1234567890)\n -;|*\"'") + ["BEGIN", "END", "\n1. "]
    for _ in range(300):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 40))))
        parsed = parse_list(text)
        assert parsed.outcome in ("ok", "fallback", "failed")
        assert all(name.strip() for name in parsed.names)
    assert parse_list(None).outcome == "failed"


def test_genitem_reads_the_first_line():
    assert Task("genitem").parse("\n Eyeliner \nBlush") == Parsed(["Eyeliner"], "ok")
    assert Task("genitem").parse("  ") == Parsed([], "failed")


# ------------------------------------------------------------------------------------------ training answers
def test_genlist_answer_puts_the_true_item_first_and_drops_the_twentieth_when_absent():
    similar = list(range(100, 120))  # LLMSeqSim's top-20
    assert genlist_answer(7, similar) == [7] + list(range(100, 119))  # absent: the 20th (119) dropped
    assert genlist_answer(105, similar) == [105] + [i for i in range(100, 120) if i != 105]
    assert len(genlist_answer(105, similar)) == 20


def test_rank_candidates_and_answer():
    similar = list(range(100, 120))
    assert rank_candidates(105, similar) == similar
    assert rank_candidates(7, similar) == list(range(100, 119)) + [7]  # the true item replaces the 20th
    assert rank_answer(105, similar) == [105] + [i for i in similar if i != 105]
    assert rank_answer(7, list(range(100, 119)) + [7]) == [7] + list(range(100, 119))
    assert rank_answer(7, similar) == similar  # at test time the true item may be missing: LLMSeqSim's order


def test_clusters_are_named_by_their_most_popular_titled_item():
    # Three tight groups on the unit circle; popularity says which item represents each.
    angles = np.radians([0, 2, 4, 120, 122, 124, 240, 242, 244])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    popularity = np.array([1, 9, 3, 5, 4, 1, 2, 2, 8])
    titled = np.ones(9, dtype=bool)
    titled[1] = False  # the most popular of group 1 has no title: the next one represents it
    clusters = Clusters.fit(vectors, popularity, titled, n_clusters=3, seed=0)
    groups = [set(np.flatnonzero(clusters.cluster_of == c)) for c in range(3)]
    assert sorted(map(sorted, groups)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert sorted(clusters.representatives.tolist()) == [2, 3, 8]
    # The target's own cluster is nearest, then the others by distance.
    near = clusters.nearest(vectors[4], n=3)
    assert clusters.representatives[near[0]] == 3 and len(near) == 3


def test_classify_expands_clusters_round_robin_by_similarity():
    cluster_of = np.array([0, 0, 0, 1, 1, 2, 2])
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.8, 0.7, 0.2])
    blocked = np.zeros(7, dtype=bool)
    blocked[1] = True  # a prompt item
    items, origin = expand_clusters([1, 0], cluster_of, scores, blocked, k=6)
    # Cluster 1's best (4), cluster 0's best unblocked (2), then their seconds (3, 0), then the rest by score.
    assert items == [4, 2, 3, 0, 5, 6] and origin == [0, 1, 0, 1, -1, -1]


# ------------------------------------------------------------------------------------------ ranked mapping
TITLES = ["Red Lipstick", "Pink Lipstick", "Black Mascara", "Brown Mascara", "Nail Polish"]
ANGLES = np.radians([0, 10, 90, 80, 45])
VECTORS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)


def encoder(texts):  # a made-up "lip..." name lands near the lipsticks, any other near the mascaras
    return np.array([[1.0, 0.05] if "lip" in t.lower() else [0.05, 1.0] for t in texts], dtype=np.float32)


def test_a_ranked_answer_keeps_its_order():
    mapper = NameMapper(TITLES, VECTORS, np.array([5, 4, 3, 2, 1]), encoder)
    names = ["Black Mascara", "Lip Oil", "Black Mascara", "Nail Polish", "Pink Lipstick"]
    (mapped,) = mapper.map_lists([names], [np.array([4])], k=5)
    # "Lip Oil" (made up) takes the nearest free lipstick in its own slot; the repeated mascara and the prompt
    # item are dropped; the list is then completed from the catalog.
    assert mapped.kinds == ["exact", "hallucinated", "duplicated", "duplicated", "exact"]
    assert mapped.items[:3] == [2, 0, 1] and len(mapped.items) == 4 and 4 not in mapped.items
    assert mapped.replaced_by == {1: 0}


def test_a_ranked_answer_maps_within_its_pool_only():
    mapper = NameMapper(TITLES, VECTORS, np.array([5, 4, 3, 2, 1]), encoder)
    pool = np.array([1, 3])  # the session's candidates: Pink Lipstick, Brown Mascara
    (mapped,) = mapper.map_lists([["Red Lipstick", "Brown Mascara"]], [np.zeros(0, np.int64)], k=5, pools=[pool],
                                 fill=False)
    # "Red Lipstick" is a catalog title but not a candidate: it maps to the nearest candidate.
    assert mapped.kinds == ["hallucinated", "exact"] and mapped.items == [1, 3]


# ------------------------------------------------------------------------------------------ the model, per task
TINY = dict(vocab_size=300, n_embd=64, n_layer=2, n_head=2, epochs=2, batch_size=16, learning_rate=3e-3)


@pytest.fixture(scope="module", params=["genlist", "classify", "rank"])
def fitted(request, synthetic):
    return create("llmseqprompt", task=request.param, **TINY).fit(synthetic.split)


def test_training_examples_follow_the_task(fitted, synthetic):
    from core.models.llmseqprompt.prompts import session_examples, split_examples

    split, config, task = synthetic.split, fitted.config, fitted.task.name
    titles = split.catalog.titles
    train, _ = fitted.examples(split)
    base, _ = split_examples(session_examples(split.train, split.catalog, config.max_prompt_items),
                             config.validation_fraction, config.seed)
    assert len(train) == len(base) > 0
    for (prompt, answer), example in zip(train, base):
        assert prompt.session == tuple(titles[i] for i in example.prompt)
        assert len(answer) == 20 and len(set(answer)) == 20
        if task == "classify":  # the true item's own cluster first, named by its representative
            clusters = fitted.clusters
            assert answer[0] == titles[clusters.representatives[clusters.cluster_of[example.target]]]
            assert prompt.candidates == tuple(titles[i] for i in clusters.representatives)
            continue
        assert answer[0] == titles[example.target]  # GenList and Rank: the true next item first
        similar = [titles[i] for i in fitted.similar.recommend([np.array(example.prompt)], 20)[0][0]]
        if task == "genlist":
            assert list(answer[1:]) == [t for t in similar if t != answer[0]][:19]
        else:
            assert sorted(prompt.candidates) == sorted(answer)  # the answer re-ranks exactly the candidates
            assert list(answer[1:]) == [t for t in similar if t in answer[1:]]  # then in LLMSeqSim's order
    if task == "rank":
        assert any(list(p.candidates) != list(a) for p, a in train)  # shuffled into the prompt


def test_each_task_answers_parses_and_maps(fitted, synthetic):
    prompts = synthetic.split.prompts[:6]
    start = len(fitted.generation_counts())
    items, _ = fitted.recommend(prompts, k=20)
    assert items.shape == (6, 20)
    for row, prompt in zip(items.tolist(), prompts):
        assert len(set(row)) == 20 and not set(row) & set(prompt.tolist())
    counts = fitted.generation_counts()[start:]
    assert len(counts) == 6 and all(c["answers"] == 1 for c in counts)
    # The counts are those of each session's own answer (greedy decoding: the same answer again).
    sessions = fitted._as_sessions(prompts)
    similar = fitted._similar(sessions, 20) if fitted.task.name == "rank" else [()] * len(sessions)
    answers = fitted.generator.sample([fitted._prompt(s, top) for s, top in zip(sessions, similar)])
    parsed = [fitted.task.parse(texts[0]) for texts in answers]
    for count, answer in zip(counts, parsed):
        assert count["exact"] + count["duplicated"] + count["hallucinated"] == len(answer.names)
        assert (count["parse_fallback"], count["parse_failed"]) == (int(answer.outcome == "fallback"),
                                                                    int(answer.outcome == "failed"))
    sources = fitted.pick_sources()
    assert len(sources) == 6 and all(len(s) == 20 and all(s) for s in sources)
    rates = generation_rates(counts)
    assert rates["parse_failure_rate"] == pytest.approx(np.mean([p.outcome == "failed" for p in parsed]))


@pytest.fixture(scope="module")
def rank_model(synthetic):
    return create("llmseqprompt", task="rank", **TINY).fit(synthetic.split)


def test_rank_only_reorders_llmseqsims_top_20(rank_model, synthetic):
    model = rank_model
    prompts = synthetic.split.prompts[:8]
    ranked, _ = model.recommend(prompts, k=20)
    similar, _ = model.similar.recommend(prompts, 20)
    assert [sorted(a) for a in ranked.tolist()] == [sorted(b) for b in similar.tolist()]
    sources = model.pick_sources()
    assert all(s.startswith("LLMSeqSim's #") for row in sources for s in row)
    # The "why" of each pick names its LLMSeqSim position.
    for row_items, row_sources, row_similar in zip(ranked.tolist(), sources, similar.tolist()):
        for item, source in zip(row_items, row_sources):
            assert source.startswith(f"LLMSeqSim's #{row_similar.index(item) + 1},")


def test_the_session_builder_says_which_llmseqsim_position_a_rank_pick_came_from(rank_model, synthetic):
    from core.picks import assemble, rank

    session = synthetic.split.prompts[0].tolist()
    ranking = rank(rank_model, session, k=5)
    similar = rank_model.similar.recommend([session], 20)[0][0].tolist()
    (picks,) = assemble({"llmseqprompt (task=rank)": ranking}, session, synthetic.catalog)
    assert len(picks.picks) == 5 and picks.note.startswith("one answer of ")
    for pick in picks.picks:
        assert pick.source.startswith(f"LLMSeqSim's #{similar.index(pick.item) + 1}, ")


def test_a_list_task_model_saves_and_loads(fitted, synthetic, tmp_path):
    prompts = synthetic.split.prompts[:4]
    items, _ = fitted.recommend(prompts, k=10)
    loaded = load_saved(fitted.save(tmp_path / fitted.task.name))
    assert loaded.task.name == fitted.task.name
    assert np.array_equal(loaded.recommend(prompts, k=10)[0], items)


def test_the_generation_note_says_how_the_answer_went():
    counts = {"exact": 12, "duplicated": 3, "hallucinated": 5, "answers": 1, "parse_fallback": 1, "parse_failed": 0}
    assert generation_note(counts).startswith("one answer of 20 names: 12 exact, 3 duplicated, 5 hallucinated")
    assert "fallback" in generation_note(counts)
    sampled = {"exact": 2, "duplicated": 0, "hallucinated": 18, "answers": 20, "parse_fallback": 0, "parse_failed": 0}
    assert generation_note(sampled).startswith("20 names sampled: 2 exact")


def test_parse_rates_are_shares_of_answers():
    counts = [{"exact": 20, "duplicated": 0, "hallucinated": 0, "answers": 1, "parse_fallback": 0, "parse_failed": 0},
              {"exact": 0, "duplicated": 0, "hallucinated": 10, "answers": 1, "parse_fallback": 1, "parse_failed": 0},
              {"exact": 0, "duplicated": 0, "hallucinated": 0, "answers": 1, "parse_fallback": 0, "parse_failed": 1},
              {"exact": 5, "duplicated": 5, "hallucinated": 10, "answers": 1, "parse_fallback": 0, "parse_failed": 0}]
    rates = generation_rates(counts)
    assert rates["parse_fallback_rate"] == pytest.approx(0.25) and rates["parse_failure_rate"] == pytest.approx(0.25)
    assert rates["hallucination_rate"] == pytest.approx(20 / 50) and rates["exact_rate"] == pytest.approx(25 / 50)
    assert set(GENERATION_KINDS) <= set(counts[0])


def test_the_dashboards_show_each_generative_runs_rates():
    from core.report import generation_table
    from core.results import EvaluationResult

    def result(label, metrics):
        return EvaluationResult("synthetic", label.split(" ")[0], label, {}, 10, metrics)

    table = generation_table({
        "vsknn": result("vsknn", {"NDCG@20": 0.5}),
        "llmseqprompt": result("llmseqprompt", {"exact_rate": 0.1, "duplicate_rate": 0.2, "hallucination_rate": 0.7}),
        "llmseqprompt (task=rank)": result("llmseqprompt (task=rank)", {
            "exact_rate": 0.8, "duplicate_rate": 0.15, "hallucination_rate": 0.05, "parse_fallback_rate": 0.02,
            "parse_failure_rate": 0.01})})
    assert list(table.index) == ["llmseqprompt", "llmseqprompt (task=rank)"]  # generative runs only
    assert table.loc["llmseqprompt (task=rank)"].tolist() == ["0.800", "0.150", "0.050", "0.020", "0.010"]
    assert table.loc["llmseqprompt", "answers not read"] == "\u2013"  # a result from before the parse rates


@pytest.mark.parametrize("task", ["genlist", "classify", "rank"])
def test_a_users_model_folder_learns_each_list_task_with_lora(synthetic, tmp_path, task):
    from test_llmseqprompt import tiny_hf_folder

    folder = tiny_hf_folder(tmp_path / "my-gpt2", synthetic.catalog.titles)
    model = create("llmseqprompt", task=task, model_folder=str(folder), epochs=1, batch_size=16,
                   max_prompt_items=3, context_tokens=512, max_train_examples=64)
    model.fit(synthetic.split)
    assert "LoRA" in model.label and np.isfinite(model.generator.history["validation_loss"][0])
    prompts = synthetic.split.prompts[:3]
    items, _ = model.recommend(prompts, k=20)
    assert all(len(set(row)) == 20 and not set(row) & set(p.tolist()) for row, p in zip(items.tolist(), prompts))
    assert [c["answers"] for c in model.generation_counts()] == [1, 1, 1]
    if task == "rank":  # a re-ranking, always
        similar, _ = model.similar.recommend(prompts, 20)
        assert [sorted(a) for a in items.tolist()] == [sorted(b) for b in similar.tolist()]


def test_rank_by_score_orders_the_candidates_by_the_models_probability(rank_model, synthetic):
    import dataclasses

    scored = create("llmseqprompt", **{**dataclasses.asdict(rank_model.config), "rank_decoding": "score"})
    scored.set_state(rank_model.state())
    scored.n_items = rank_model.n_items
    prompts = synthetic.split.prompts[:4]
    items, _ = scored.recommend(prompts, k=20)
    similar = scored._similar(scored._as_sessions(prompts), 20)
    session_prompts = [scored._prompt(p, s) for p, s in zip(scored._as_sessions(prompts), similar)]
    scores = scored.generator.first_line_scores(session_prompts, [scored._names(s) for s in similar])
    for row, top, score in zip(items.tolist(), similar, scores):
        assert sorted(row) == sorted(top)  # a re-ranking of LLMSeqSim's top-20
        assert [score[top.index(i)] for i in row] == sorted(score, reverse=True)  # most probable first
        assert np.all(score < 0)  # log-probabilities
    assert scored.generation_counts() == []  # nothing generated, nothing counted
    with pytest.raises(Exception, match="needs the local backend"):
        create("llmseqprompt", task="rank", backend="openai", rank_decoding="score")


def test_a_candidates_score_is_its_log_probability_after_the_prompt(rank_model, synthetic):
    import torch

    lm = rank_model.generator
    session = rank_model._as_sessions(synthetic.split.prompts[:1])[0]
    similar = rank_model._similar([session], 20)[0]
    prompt = rank_model._prompt(session, similar)
    names = rank_model._names(similar[:3])
    scores = lm.first_line_scores([prompt], [names])[0]
    for name, score in zip(names, scores):  # the same figure from one plain forward pass over prompt + line
        prompt_ids, head = lm.prompt_ids(prompt), lm.text_ids(f"BEGIN\n1. {name}\n")
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([prompt_ids + head])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        expected = sum(float(logp[len(prompt_ids) - 1 + j, t]) for j, t in enumerate(head))
        assert score == pytest.approx(expected, abs=1e-3)


def test_genitem_models_saved_before_the_tasks_keep_their_key():
    from core.config import keyed_dict

    keyed = keyed_dict(create("llmseqprompt").config)
    assert not {"task", "rank_decoding", "max_train_examples"} & set(keyed) and keyed["context_tokens"] == 384
    assert keyed_dict(create("llmseqprompt", task="rank").config)["task"] == "rank"  # a task is its own model


def test_the_task_names_agree_everywhere():
    import dataclasses
    import typing

    from core import cli
    from core.models.llmseqprompt import LLMSeqPromptConfig
    from core.models.llmseqprompt.tasks import SYSTEMS, TASKS

    field = {f.name: f for f in dataclasses.fields(LLMSeqPromptConfig)}["task"]
    assert typing.get_args(typing.get_type_hints(LLMSeqPromptConfig)[field.name]) == TASKS == tuple(SYSTEMS)
    finetune = next(a for a in cli.parser()._subparsers._group_actions[0].choices["finetune"]._actions
                    if a.dest == "task")
    assert tuple(finetune.choices) == TASKS


def test_genlist_sources_follow_the_answers_lines(synthetic):
    from core.models.llmseqprompt.mapping import MappedSession

    model = create("llmseqprompt", task="genlist", **TINY)
    model.titles = list(synthetic.catalog.titles)
    model.popularity = np.ones(len(model.titles))
    model.item_vectors = np.eye(len(model.titles), dtype=np.float32)
    # "item 3" exact (line 1), "item 3" again (dropped), "item 5" exact (line 3), a made-up name (line 4) replaced
    # by item 9, then item 12 from the similarity fill.
    mapped = MappedSession(names=["item 3", "item 3", "item 5", "itm 9"],
                           kinds=["exact", "duplicated", "exact", "hallucinated"], items=[3, 5, 9, 12],
                           replaced_by={3: 9})
    assert model._genlist_sources(mapped) == [
        "the model's list, line 1", "the model's list, line 3",
        "the nearest title to a name the model made up (line 4)", "similarity to the names the model wrote"]


def test_bad_task_options_say_so_in_one_sentence():
    from core.common import ConfigError

    with pytest.raises(ConfigError, match="is for task=\"rank\""):
        create("llmseqprompt", rank_decoding="score")
    with pytest.raises(ValueError, match="no item has a title"):
        Clusters.fit(np.eye(3, dtype=np.float32), np.ones(3), np.zeros(3, dtype=bool))
