"""The offline LLMSeqPrompt backend: a Hugging Face causal LM fine-tuned and sampled on this machine.

Two kinds of model:

* ``model_folder=""`` (the default): **a small GPT-2-architecture model trained from scratch on the train
  sessions' name sequences, with a byte-level BPE tokenizer trained on the catalog titles — not a
  pretrained LLM.** No package on the registries reachable here ships a pretrained causal LM's weights, and
  nothing is downloaded at run time. A session ``i1..in`` becomes ``<|endoftext|> name1 <|sep|> name2
  <|sep|> ... name_n <|sep|>`` and the model learns every name from the ones before it (next-name language
  modelling over the whole sequence, which teaches a from-scratch model the titles themselves); at
  inference the prompt ends with ``<|sep|>`` and a name is sampled up to the next ``<|sep|>``. For the list
  tasks (:mod:`.tasks`) a session becomes ``<|endoftext|> user text <|sep|> answer text <|endoftext|>``, the
  texts as the OpenAI backend writes them (without the system prompt, the same in every example, and without
  Classify's category list, which a small context cannot hold), with the loss on the answer only.
* ``model_folder=<path>``: a user's own checkpoint (GPT-2, SmolLM, Qwen, ...), fine-tuned with LoRA (peft)
  on the paper's chat prompt (the model's chat template when it has one), with the loss on the target name
  only, as in the paper's fine-tuning. Only the adapter's weights are saved; the folder is read again on load.

GenItem sampling follows the paper's best setting (n=20 samples, temperature 0.25, top_p 1) with a torch
generator seeded per session, one session at a time and without padding, so a session's names never depend
on the other sessions of a batch. The list tasks decode greedily (temperature 0), sessions batched with left
padding (``transformers``' ``generate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core import train as loop
from core.common import Progress
from core.models.llmseqprompt.generator import LLMError, array_text, session_seed, text_array
from core.models.llmseqprompt.tasks import Example, Prompt, Task

SCRATCH_LABEL = "GPT-2 architecture trained from scratch on this dataset's train sessions (not a pretrained LLM)"
BOS, SEP = "<|endoftext|>", "<|sep|>"
IGNORE = -100  # label of tokens that carry no loss
MAX_NAME_TOKENS = 64  # a generated name stops here (Beauty: titles average ~18 tokens; a few run past 64)
MAX_VALIDATION_EXAMPLES = 1000
WEIGHT_DECAY = 0.01  # AdamW's, as in the usual fine-tuning recipes
CLIP_NORM = 1.0  # gradient norm clipping: keeps early from-scratch steps stable
WARMUP_SHARE, LR_FLOOR = 0.05, 0.1  # linear warm-up over 5% of the steps, then cosine decay to 10% of the peak
MIN_IMPROVEMENT = 1e-4  # a validation loss must drop by more than this to count as better
# The list tasks' least context (prompt + answer tokens; Beauty: a title ~19 tokens, a list answer ~370, Rank's
# candidates ~380); GenItem's is context_tokens as set.
LIST_CONTEXT = {"genlist": 1024, "classify": 1024, "rank": 1280}
MIN_PROMPT_TOKENS = 128  # a list answer's budget leaves at least this much for the prompt
GREEDY_BATCH = 16  # list tasks: prompts decoded at once


class LocalLMError(LLMError):
    """A local model folder that cannot be used; the message says why in one sentence."""


@dataclass(frozen=True)
class LocalConfig:
    """The local backend's own options (taken by name from LLMSeqPrompt's; their help lives there)."""

    task: str
    model_folder: str
    vocab_size: int
    n_embd: int
    n_layer: int
    n_head: int
    context_tokens: int
    epochs: int
    patience: int
    batch_size: int
    learning_rate: float
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    n_samples: int
    temperature: float
    top_p: float
    seed: int


def local_generator(config: LocalConfig) -> "LocalLM":
    """A GPT-2 trained from scratch without a model folder, else the folder's model with LoRA."""
    return LoraFolderLM(config) if config.model_folder else ScratchGPT(config)


class LocalLM:
    """What both local kinds share: the training examples, the shared training loop (``core.train``), and
    sampling; a subclass builds the model and tokenizer and says how names and prompts become tokens."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.task = Task(config.task)
        self.context = max(config.context_tokens, LIST_CONTEXT.get(self.task.name, 0))
        self.model: Any = None
        self.tokenizer: Any = None
        self.max_new_tokens = 0
        self.history: dict[str, list[float]] = {"train_loss": [], "validation_loss": []}

    # ---------------------------------------------------------------------------- per kind
    label = ""

    def build(self, titles: Sequence[str]) -> None:
        raise NotImplementedError

    def name_ids(self, name: str) -> list[int]:
        raise NotImplementedError

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        raise NotImplementedError

    def text_ids(self, text: str) -> list[int]:
        raise NotImplementedError

    def answer(self, prompt: list[int], name: list[int]) -> tuple[list[int], list[int]]:
        """(input ids, labels) of a training example from its prompt's and answer's tokens."""
        raise NotImplementedError

    def stops(self) -> set[int]:
        raise NotImplementedError

    def trainable_state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def extra_state(self) -> dict[str, np.ndarray]:
        return {}

    def rebuild(self, arrays: dict[str, np.ndarray]) -> None:
        """The untrained model and tokenizer again, from a save."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------- shared
    def spending_estimate(self, train: Sequence[Example], validation: Sequence[Example], n_prompts: int) -> None:
        return None  # runs on this machine

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt, dropping the oldest session names until it fits the context with an answer
        to come (then cutting its start, should the candidates alone not fit)."""
        budget = self.context - self.max_new_tokens
        while True:
            ids = self.prompt_tokens(prompt)
            if len(ids) <= budget or not prompt.session:
                return ids[-budget:] if len(ids) > budget else ids
            prompt = Prompt(prompt.session[1:], prompt.candidates)

    def answer_ids(self, answer: Sequence[str]) -> list[int]:
        if self.task.is_list:
            return self.text_ids(self.task.answer_text(answer))
        return self.name_ids(answer[0])

    def example(self, prompt: Prompt, answer: Sequence[str]) -> tuple[list[int], list[int]]:
        # An answer longer than a generation may run is learned up to that length (it fits the context then).
        return self.answer(self.prompt_ids(prompt), self.answer_ids(answer)[:self.max_new_tokens - 1])

    def fit(self, train: Sequence[Example], validation: Sequence[Example], titles: Sequence[str],
            progress: Progress | None = None, confirm_spending: bool = False) -> None:
        """Build the model and fine-tune it on the pairs with the shared loop (``core.train.train``): AdamW,
        warm-up then cosine decay, early stopping on the validation loss, the best epoch's weights kept."""
        if not train:
            raise LocalLMError("no training example: every train session has an untitled item or a single item.")
        c = self.config
        loop.configure_torch()
        self.build(titles)
        if self.task.is_list:  # the longest answers but the 1%, within the context
            lengths = [len(self.answer_ids(answer)) for _, answer in train]
            self.max_new_tokens = min(int(np.percentile(lengths, 99)) + 2, self.context - MIN_PROMPT_TOKENS)
        else:
            longest = max(len(self.name_ids(t)) for t in titles if t) if any(titles) else 8
            self.max_new_tokens = min(longest + 2, MAX_NAME_TOKENS, self.context // 2)
        train_data = [self.example(n, t) for n, t in train]
        # The validation loss is measured on a seeded subset: a full pass over 20% of Beauty costs minutes.
        keep = np.random.default_rng(c.seed).permutation(len(validation))[:MAX_VALIDATION_EXAMPLES]
        val_data = [self.example(*validation[i]) for i in sorted(keep)]
        history = loop.train(
            self.model, epoch_batches=lambda rng: length_batches(train_data, c.batch_size, rng),
            batch_loss=self.loss, validate=(lambda: self.validation_loss(val_data)) if val_data else None,
            learning_rate=c.learning_rate, weight_decay=WEIGHT_DECAY, clip_norm=CLIP_NORM, max_epochs=c.epochs,
            patience=c.patience, seed=c.seed, progress=progress, label="fine-tuning", higher_is_better=False,
            min_delta=MIN_IMPROVEMENT, scheduler=loop.warmup_cosine(WARMUP_SHARE, LR_FLOOR),
            validation_name="validation loss",
            snapshot=lambda: {k: v.detach().clone() for k, v in self.trainable_state().items()},
            restore=self.load_trainable_state)
        self.history = {"train_loss": history.loss, "validation_loss": history.validation}

    def loss(self, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        if self.task.is_list:
            return self.answer_loss(batch)
        ids, mask = padded([x for x, _ in batch], 0)
        labels, _ = padded([y for _, y in batch], IGNORE)
        return self.model(input_ids=ids, attention_mask=mask, labels=labels).loss

    def answer_loss(self, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        """Mean cross-entropy over the answers' tokens, the batch padded on the left so every answer ends at
        the last position: the vocabulary projection runs on the answers' span only (``logits_to_keep``),
        not on the long prompts."""
        span = max(sum(1 for y in labels if y != IGNORE) for _, labels in batch)
        ids, mask = padded([x for x, _ in batch], 0, left=True)
        labels, _ = padded([y for _, y in batch], IGNORE, left=True)
        width = ids.shape[1]
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            logits_to_keep=span + 1).logits  # positions width-span-1 .. width-1
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                 labels[:, width - span:].reshape(-1), ignore_index=IGNORE)

    @torch.no_grad()
    def validation_loss(self, data: list[tuple[list[int], list[int]]]) -> float:
        self.model.eval()
        total, count = 0.0, 0
        for start in range(0, len(data), self.config.batch_size):
            batch = data[start:start + self.config.batch_size]
            n = sum(sum(1 for y in labels[1:] if y != IGNORE) for _, labels in batch)
            total += float(self.loss(batch)) * n
            count += n
        return total / max(count, 1)

    @torch.no_grad()
    def sample(self, prompts: Sequence[Prompt], progress: Progress | None = None) -> list[list[str]]:
        """GenItem: ``n_samples`` names for each prompt; a list task: one greedy answer's text each."""
        c = self.config
        loop.configure_torch()
        self.model.eval()
        stops = self.stops()
        if self.task.is_list:
            return self.greedy(prompts, stops, progress)
        out = []
        for i, prompt in enumerate(prompts):
            generator = torch.Generator().manual_seed(session_seed(c.seed, prompt.session))
            ids = torch.tensor([self.prompt_ids(prompt)], dtype=torch.long)
            tokens = sample_rows(self.model, ids, c.n_samples, c.temperature, c.top_p, self.max_new_tokens, stops,
                                 generator)
            out.append([self.decode(row, stops) for row in tokens])
            if progress and (i + 1) % 10 == 0:
                progress(i + 1, len(prompts), "generating names")
        return out

    def greedy(self, prompts: Sequence[Prompt], stops: set[int], progress: Progress | None) -> list[list[str]]:
        """One greedy answer per prompt, ``GREEDY_BATCH`` prompts at a time (left-padded, similar lengths
        together); the answer's text, cut at the first stop token."""
        encoded = [self.prompt_ids(p) for p in prompts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        stop = min(stops)
        out: list[list[str]] = [[] for _ in prompts]
        for start in range(0, len(order), GREEDY_BATCH):
            rows = order[start:start + GREEDY_BATCH]
            ids, mask = padded([encoded[i] for i in rows], stop, left=True)
            width = ids.shape[1]
            generated = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                                            do_sample=False, eos_token_id=sorted(stops), pad_token_id=stop)
            for row, i in enumerate(rows):
                out[i] = [self.decode(generated[row, width:].tolist(), stops, first_line=False)]
            if progress:
                progress(min(start + GREEDY_BATCH, len(order)), len(order), "generating answers")
        return out

    @torch.no_grad()
    def first_line_scores(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]],
                          progress: Progress | None = None) -> list[np.ndarray]:
        """Rank by scoring (``rank_decoding="score"``): per prompt, for each candidate name, the log-probability
        (nats, summed over its tokens) that the answer opens with it — ``BEGIN``, ``1. name`` and the line
        break: the model's belief that it is the next item (it was trained with the true item first). Nothing is
        generated, so nothing is hallucinated. Returns one (len(candidates[i]),) float64 array per prompt."""
        loop.configure_torch()
        self.model.eval()
        out = []
        for i, (prompt, names) in enumerate(zip(prompts, candidates)):
            if not names:
                out.append(np.zeros(0))
                continue
            opening = self.task.answer_text([]).rsplit("\n", 1)[0]  # "BEGIN"
            heads = [self.text_ids(f"{opening}\n1. {name}\n") for name in names]
            prompt_ids = self.prompt_ids(prompt)
            first = self.model(input_ids=torch.tensor([prompt_ids], dtype=torch.long), use_cache=True)
            cache = first.cache
            cache.batch_repeat_interleave(len(heads))
            tokens, mask = padded(heads, 0)
            attention = torch.cat([torch.ones((len(heads), len(prompt_ids)), dtype=torch.long), mask], dim=1)
            rest = self.model(input_ids=tokens, attention_mask=attention, cache=cache, use_cache=True).logits
            # The first head token is predicted by the prompt's last position, each next one by the one before.
            logits = torch.cat([first.logits[:, -1:].expand(len(heads), 1, -1), rest[:, :-1]], dim=1).float()
            chosen = torch.log_softmax(logits, dim=-1).gather(2, tokens[..., None])[..., 0]
            out.append((chosen * mask).sum(dim=1).double().numpy())
            if progress and (i + 1) % 10 == 0:
                progress(i + 1, len(prompts), "scoring candidates")
        return out

    def decode(self, row: list[int], stops: set[int], first_line: bool = True) -> str:
        cut = next((j for j, t in enumerate(row) if t in stops), len(row))
        text = self.tokenizer.decode(row[:cut], skip_special_tokens=True).strip()
        return text.split("\n")[0].strip() if first_line else text

    def state(self) -> dict[str, np.ndarray]:
        arrays = {f"lm.{k}": v.detach().cpu().numpy() for k, v in self.trainable_state().items()}
        arrays["lm_max_new_tokens"] = np.array([self.max_new_tokens], dtype=np.int64)
        arrays["lm_history"] = np.array([self.history["train_loss"], self.history["validation_loss"]],
                                        dtype=np.float64).reshape(2, -1)
        return {**arrays, **self.extra_state()}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.rebuild(arrays)
        self.load_trainable_state({k[3:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                                   if k.startswith("lm.")})
        self.max_new_tokens = int(arrays["lm_max_new_tokens"][0])
        history = arrays["lm_history"]
        self.history = {"train_loss": history[0].tolist(), "validation_loss": history[1].tolist()}
        self.model.eval()


class ScratchGPT(LocalLM):
    """A small GPT-2 trained from scratch on name sequences, with a byte-level BPE trained on the titles."""

    label = SCRATCH_LABEL

    def _train_tokenizer(self, titles: Sequence[str]) -> Any:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=self.config.vocab_size, special_tokens=[BOS, SEP],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tokenizer.train_from_iterator([t for t in titles if t], trainer=trainer)
        return tokenizer

    def _model(self) -> torch.nn.Module:
        from transformers import GPT2Config, GPT2LMHeadModel

        c = self.config
        options = dict(vocab_size=self.tokenizer.get_vocab_size(), n_positions=self.context, n_embd=c.n_embd,
                       n_layer=c.n_layer, n_head=c.n_head, bos_token_id=0, eos_token_id=0, loss_type="ForCausalLM")
        gpt = GPT2Config(**options)
        torch.manual_seed(c.seed)
        return GPT2LMHeadModel(gpt)

    def build(self, titles: Sequence[str]) -> None:
        self.tokenizer = self._train_tokenizer(titles)
        self.model = self._model()

    def rebuild(self, arrays: dict[str, np.ndarray]) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(array_text(arrays["lm_tokenizer_json"]))
        self.model = self._model()

    def name_ids(self, name: str) -> list[int]:
        return self.tokenizer.encode(name, add_special_tokens=False).ids

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        bos, sep = self.tokenizer.token_to_id(BOS), self.tokenizer.token_to_id(SEP)
        if self.task.is_list:
            return [bos] + self.text_ids(self.task.user_text(prompt, with_candidates=False)) + [sep]
        return [bos] + [t for name in prompt.session for t in self.name_ids(name) + [sep]]

    def answer(self, prompt: list[int], name: list[int]) -> tuple[list[int], list[int]]:
        if self.task.is_list:  # the loss on the answer and its end only
            answer = name + [self.tokenizer.token_to_id(BOS)]
            return prompt + answer, [IGNORE] * len(prompt) + answer
        ids = prompt + name + [self.tokenizer.token_to_id(SEP)]
        return ids, [IGNORE] + ids[1:]  # every name after the first token carries loss

    def stops(self) -> set[int]:
        if self.task.is_list:
            return {self.tokenizer.token_to_id(BOS)}
        return {self.tokenizer.token_to_id(SEP), self.tokenizer.token_to_id(BOS)}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.model.state_dict().items() if k != "lm_head.weight"}  # tied to wte

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise LocalLMError(f"saved weights do not fit the model (missing {missing}, unexpected {unexpected}).")
        self.model.tie_weights()

    def extra_state(self) -> dict[str, np.ndarray]:
        return {"lm_tokenizer_json": text_array(self.tokenizer.to_str())}


class LoraFolderLM(LocalLM):
    """A user's own Hugging Face checkpoint fine-tuned with LoRA on the paper's chat prompt (loss on the name
    only); only the adapter is saved, and the folder is read again on load."""

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"{self.config.model_folder} fine-tuned with LoRA"

    def _load_folder(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(self.config.model_folder).expanduser()
        if not (folder / "config.json").exists():
            raise LocalLMError(f"{folder}: not a Hugging Face model folder (no config.json there).")
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as err:
            raise LocalLMError(f"{folder}: cannot be loaded as a causal language model ({str(err).splitlines()[0]}).") \
                from None
        if tokenizer.eos_token_id is None:
            raise LocalLMError(f"{folder}: the tokenizer has no end-of-sequence token to end a generated name.")
        return tokenizer, model

    def build(self, titles: Sequence[str]) -> None:
        from peft import LoraConfig, get_peft_model

        c = self.config
        self.tokenizer, base = self._load_folder()
        lora = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        self.model = get_peft_model(base, lora)

    def rebuild(self, arrays: dict[str, np.ndarray]) -> None:
        self.build([])

    def name_ids(self, name: str) -> list[int]:
        return self.tokenizer(name, add_special_tokens=False)["input_ids"]

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        messages = self.task.messages(prompt)
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = f"{messages[0]['content']}\n\n{messages[1]['content']}\n\nRecommendation:"
        return self.text_ids(text)

    def answer(self, prompt: list[int], name: list[int]) -> tuple[list[int], list[int]]:
        answer = name + [self.tokenizer.eos_token_id]
        return prompt + answer, [IGNORE] * len(prompt) + answer

    def stops(self) -> set[int]:
        return {self.tokenizer.eos_token_id}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model)

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, state)


def padded(rows: Sequence[Sequence[int]], fill: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as one (len(rows), longest) long tensor padded with ``fill`` on the right (``left=True``: on
    the left, so every row ends at the last position), and the 0/1 mask of the real tokens."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), fill, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def length_batches(data: list, batch_size: int, rng: np.random.Generator) -> list[list]:
    """Shuffled batches of similar-length examples (less padding): shuffle, sort within chunks of 50
    batches by length, cut into batches, shuffle the batches."""
    order = rng.permutation(len(data))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: len(data[i][0]))
        batches += [[data[i] for i in part[j:j + batch_size]] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sample_rows(model: torch.nn.Module, prompt: torch.Tensor, n: int, temperature: float, top_p: float,
                 max_new_tokens: int, stops: set[int], generator: torch.Generator) -> list[list[int]]:
    """``n`` continuations of one prompt: the prompt is run once, its KV cache repeated ``n`` times."""
    output = model(input_ids=prompt, use_cache=True)
    cache = output.cache
    cache.batch_repeat_interleave(n)
    logits = output.logits[:, -1].expand(n, -1)
    stop_ids = torch.tensor(sorted(stops), dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    rows: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        token = next_token(logits, temperature, top_p, generator)
        token = torch.where(done, stop_ids[0], token)
        rows.append(token)
        done |= torch.isin(token, stop_ids)
        if bool(done.all()):
            break
        output = model(input_ids=token[:, None], cache=cache, use_cache=True)
        cache, logits = output.cache, output.logits[:, -1]
    return torch.stack(rows, dim=1).tolist() if rows else [[] for _ in range(n)]


def next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the most likely token).
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
