"""LLMSeqPrompt's OpenAI path end to end against a local server (tests/fake_openai_finetune.py): files,
fine_tuning.jobs, chat.completions, with 401, 429 and a failed job — and the CLI, which stops without a key
or without --yes having sent nothing."""

import json
import re

import pytest
from fake_openai_finetune import API_KEY, FakeFineTuning

from core import cli
from core.models import create
from core.models import load as load_saved
from core.models.llmseqprompt import openai_backend
from core.models.llmseqprompt.generator import LLMError
from core.models.llmseqprompt.openai_backend import OpenAIKeyMissing, estimate_cost
from core.models.llmseqprompt.tasks import Prompt, Task


def next_item_answer(user_message: str, n: int) -> list[str]:
    """A 'fine-tuned model' for the synthetic data: mostly the next item's title, one duplicate and one
    hallucinated name among the samples."""
    last = int(re.findall(r"item (\d+)", user_message)[-1])
    names = [f"item {(last + 1 + i) % 30}" for i in range(n)]
    if n >= 5:
        names[4] = names[3]  # a duplicate
        names[2] = "a lovely new item"  # a hallucination
    return names


@pytest.fixture()
def server(monkeypatch):
    with FakeFineTuning(next_item_answer) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setattr(openai_backend, "POLL_SECONDS", 0.01)
        yield fake


def openai_model(**overrides):
    return create("llmseqprompt", backend="openai", max_retries=2, **overrides)


def test_fine_tunes_generates_and_maps_end_to_end(server, synthetic, tmp_path):
    model = openai_model()
    progress = []
    model.fit(synthetic.split, confirm_spending=True,
              progress=lambda done, total, message: progress.append((done, total, message)))
    # Two uploads (train + validation JSONL in the chat format), one job on the default base model.
    assert len(server.files) == 2
    first = server.files["file-1"].decode()
    record = json.loads(next(line for line in first.splitlines() if line.startswith('{"messages"')))
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    assert server.job_requests[0]["model"] == "gpt-4o-mini-2024-07-18"
    assert server.job_requests[0]["validation_file"] == "file-2"
    assert model.generator.model_id.startswith("ft:gpt-4o-mini-2024-07-18:test::")
    assert any(total == 3 for _, total, _ in progress)  # "Step i/3" events drive the progress
    # The fine-tuned model id is stored under cache/llm/openai/.
    train, validation = model.examples(synthetic.split)
    stored = json.loads(model.generator.record_path(train, validation).read_text())
    assert stored["fine_tuned_model"] == model.generator.model_id

    prompts = synthetic.split.prompts[:8]
    items, _ = model.recommend(prompts, k=5)
    request = server.chat_requests[0]
    assert (request["n"], request["temperature"], request["top_p"]) == (20, 0.25, 1.0)
    assert request["model"] == model.generator.model_id
    assert (items[:, 0] == synthetic.split.targets[:8]).all()  # the next item, named exactly, comes first
    counts = model.generation_counts()
    # Per session: one name twice (duplicated x2), one hallucination, the rest exact (a name that is a
    # prompt item counts as duplicated too).
    assert all(c["hallucinated"] == 1 for c in counts) and all(c["duplicated"] >= 2 for c in counts)

    loaded = load_saved(model.save(tmp_path / "openai-model"))
    assert loaded.generator.model_id == model.generator.model_id


def test_genitem_jobs_stored_before_the_tasks_are_still_found():
    import hashlib
    import os

    generator = openai_model().generator
    train = [(Prompt(("Red Lipstick", "Mascara")), ("Eyeliner",))]
    validation = [(Prompt(("Blush",)), ("Bronzer",))]
    # The record's name as the version before the tasks computed it, from (names, target) pairs.
    c = generator.config
    old = hashlib.sha256(json.dumps([c.openai_model, c.openai_epochs, c.seed, os.environ.get("OPENAI_BASE_URL", ""),
                                     [(["Red Lipstick", "Mascara"], "Eyeliner")], [(["Blush"], "Bronzer")]]).encode())
    assert generator.record_path(train, validation).name == f"{old.hexdigest()[:16]}.json"
    assert openai_model(task="genlist").generator.record_path(train, validation) != generator.record_path(
        train, validation)


def test_a_stored_model_is_reused_without_a_new_job(server, synthetic):
    first = openai_model()
    first.fit(synthetic.split, confirm_spending=True)
    again = openai_model()  # not confirmed: it may only reuse what is stored
    again.fit(synthetic.split)
    assert again.generator.model_id == first.generator.model_id
    assert len(server.job_requests) == 1 and len(server.files) == 2


def test_nothing_is_sent_without_confirmation(server, synthetic):
    model = openai_model(seed=1)  # other data key, so nothing is stored for it
    with pytest.raises(LLMError, match="--yes"):
        model.fit(synthetic.split)
    assert server.log == []


def test_no_key_stops_before_any_request(server, synthetic, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    model = openai_model(seed=2)
    with pytest.raises(OpenAIKeyMissing, match="OPENAI_API_KEY is not set"):
        model.fit(synthetic.split, confirm_spending=True)
    assert server.log == []


def test_a_rejected_key_is_one_clear_sentence(server, synthetic, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    model = openai_model(seed=3)
    with pytest.raises(LLMError, match=r"rejected the API key \(401\): Incorrect API key"):
        model.fit(synthetic.split, confirm_spending=True)


def test_a_failed_job_reports_its_reason(server, synthetic):
    server.fail_jobs = True
    model = openai_model(seed=4)
    with pytest.raises(LLMError, match="failed: The job failed due to an invalid training file"):
        model.fit(synthetic.split, confirm_spending=True)


def test_rate_limits_are_retried_then_reported(server, synthetic):
    model = openai_model(seed=5, concurrency=1)
    model.fit(synthetic.split, confirm_spending=True)
    server.rate_limited = 2  # two 429s, then answers: within max_retries=2
    items, _ = model.recommend(synthetic.split.prompts[:1], k=3)
    assert len(server.chat_requests) == 3 and items[0, 0] == synthetic.split.targets[0]
    server.rate_limited = 10  # more than the retries
    with pytest.raises(LLMError, match=r"rate-limiting \(429\)"):
        model.recommend(synthetic.split.prompts[:1], k=3)


def test_cost_estimate_follows_the_token_count():
    train = [(Prompt(("a" * 40,)), ("b" * 20,))]
    estimate = estimate_cost(train, [], "gpt-4o-mini-2024-07-18", epochs=2, n_prompts=10, n_samples=20)
    # approximate tokens: system prompt + user + assistant contents / 4, +4 per message, +3 for the reply
    from core.models.llmseqprompt.prompts import SYSTEM_PROMPT

    user = "The user's item list:\n" + "a" * 40
    expected = (-(-len(SYSTEM_PROMPT) // 4) + 4) + (-(-len(user) // 4) + 4) + (5 + 4) + 3
    assert estimate.tokens_per_epoch == expected
    assert estimate.training_usd == round(expected * 2 * 3.00 / 1e6, 2)
    with pytest.raises(LLMError, match="unknown OpenAI base model"):
        estimate_cost(train, [], "gpt-99", 1, 1, 1)
    # A list task answers once per prompt, whatever n_samples says; its records carry the numbered list.
    listed = [(Prompt(("a" * 40,)), ("b" * 20, "c" * 20))]
    once = estimate_cost(listed, [], "gpt-4o-mini-2024-07-18", 2, 10, n_samples=20, task=Task("genlist"))
    assert once.inference_usd == estimate_cost(listed, [], "gpt-4o-mini-2024-07-18", 2, 10, n_samples=1,
                                               task=Task("genlist")).inference_usd
    assert once.tokens_per_epoch > estimate.tokens_per_epoch


# ------------------------------------------------------------------------------------------ list tasks
def list_answer(user_message: str, n: int) -> list[str]:
    """A 'fine-tuned model' for the synthetic data's list tasks: the next items after the session's last one,
    in order — written as a numbered list between BEGIN and END (a malformed answer for sessions ending in
    item 5, an unreadable one for item 6)."""
    blocks = re.findall(r"BEGIN\n(.*?)\nEND", user_message, re.S)
    last = int(blocks[0].split("\n")[-1].split()[-1])
    if last == 6:
        return ["I am sorry, I cannot help with that."] * n
    if len(blocks) > 1:  # rank's candidates, classify's representatives: closest after the last item first
        names = sorted(blocks[1].split("\n"), key=lambda name: (int(name.split()[-1]) - last - 1) % 30)
    else:
        names = [f"item {(last + 1 + i) % 30}" for i in range(20)]
    if last == 5:
        return ["; ".join(names)] * n  # one line, no markers: read with a fallback
    return ["BEGIN\n" + "\n".join(f"{i}. {name}" for i, name in enumerate(names[:20], 1)) + "\nEND"] * n


@pytest.mark.parametrize("task", ["genlist", "classify", "rank"])
def test_each_list_task_fine_tunes_answers_and_maps_end_to_end(server, synthetic, task):
    server.answer = list_answer
    model = openai_model(task=task)
    assert "$" in model.spending_estimate(synthetic.split)
    model.fit(synthetic.split, confirm_spending=True)
    uploaded = server.files["file-1"].decode().splitlines()
    record = json.loads(next(line for line in uploaded if line.startswith('{"messages"')))
    assert record["messages"][0]["content"] == Task(task).system
    assert record["messages"][2]["content"].startswith("BEGIN\n1. item ")  # the numbered answer list
    if task != "genlist":
        header = {"rank": "The candidates:", "classify": "The category list:"}[task]
        assert header in record["messages"][1]["content"]

    split = synthetic.split
    prompts, targets = split.prompts[:12], split.targets[:12]
    items, _ = model.recommend(prompts, k=10)
    request = server.chat_requests[-1]
    assert (request["n"], request["temperature"], request["top_p"]) == (1, 0.0, 1.0)  # the paper's greedy answer
    counts = model.generation_counts()
    lasts = [int(p[-1]) for p in prompts]
    for row, last, target, count in zip(items.tolist(), lasts, targets, counts):
        assert len(set(row)) == 10 and count["answers"] == 1
        if last == 6:  # unreadable: still a full list (the task's fallback), counted as a parse failure
            assert count["parse_failed"] == 1 and count["exact"] + count["hallucinated"] == 0
        elif last == 5:
            assert count["parse_fallback"] == 1 and row[0] == target
        else:
            assert count["parse_failed"] == count["parse_fallback"] == 0
            assert row[0] == target  # the next item, named first, leads the list


# ------------------------------------------------------------------------------------------ CLI
def test_cli_without_a_key_stops_with_one_sentence_having_sent_nothing(server, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY")
    assert cli.main(["finetune", "--backend", "openai", "--dataset", "ml-100k"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: OPENAI_API_KEY is not set") and "\n" not in err and "Traceback" not in err
    assert server.log == []


def test_cli_prints_the_estimate_and_needs_yes(server, capsys):
    assert cli.main(["finetune", "--backend", "openai", "--dataset", "ml-100k"]) == 2
    out, err = capsys.readouterr()
    assert "estimate: gpt-4o-mini-2024-07-18" in out and "$" in out
    assert [line for line in err.splitlines() if not line.startswith("note: ")] == [
        "error: not started: fine-tuning costs money (the estimate above); re-run with --yes to confirm."]
    assert server.log == []


def test_cli_with_yes_fine_tunes_against_the_server(server, capsys, monkeypatch, tmp_path):
    from core import data as data_module

    synthetic_dataset = data_module.synthetic()
    monkeypatch.setattr(data_module, "load", lambda name, n_folds=3: synthetic_dataset)
    assert cli.main(["finetune", "--backend", "openai", "--dataset", "synthetic", "--yes",
                     "--set", "openai_model=gpt-3.5-turbo"]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned in" in out and "ft:gpt-3.5-turbo:test::" in out
    assert server.job_requests[0]["model"] == "gpt-3.5-turbo"


@pytest.mark.parametrize("task", ["genitem", "rank"])
def test_cli_local_backend_trains_and_saves(monkeypatch, capsys, task):
    from core import data as data_module

    synthetic_dataset = data_module.synthetic()
    monkeypatch.setattr(data_module, "load", lambda name, n_folds=3: synthetic_dataset)
    args = ["finetune", "--dataset", "synthetic", "--task", task, "--set", "epochs=1", "--set", "n_embd=32",
            "--set", "n_layer=1", "--set", "vocab_size=300", "--set", "n_head=2"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "trained from scratch" in out and "fine-tuned in" in out and f"task: {task}" in out
    assert cli.main(args) == 0 and "already fine-tuned" in capsys.readouterr().out


def test_a_damaged_job_record_never_starts_another_paid_job(server, synthetic):
    model = openai_model(seed=7)  # its own record
    train, validation = model.examples(synthetic.split)
    path = model.generator.record_path(train, validation)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"job_id": "ftjob-')  # cut short while written by an older version
    with pytest.raises(LLMError, match="damaged") as caught:
        model.fit(synthetic.split, confirm_spending=True)
    assert "\n" not in str(caught.value)
    assert not server.files and not server.job_requests  # nothing uploaded, nothing paid
