"""The offline LLMSeqPrompt backend: a Hugging Face causal LM fine-tuned and sampled on this machine.

Two kinds of model:

* ``model_folder=""`` (the default): **a small GPT-2-architecture model trained from scratch on the train
  sessions' name sequences, with a byte-level BPE tokenizer trained on the catalog titles — not a
  pretrained LLM.** No package on the registries reachable here ships a pretrained causal LM's weights, and
  nothing is downloaded at run time. A session ``i1..in`` becomes ``<|endoftext|> name1 <|sep|> name2
  <|sep|> ... name_n <|sep|>`` and the model learns every name from the ones before it (next-name language
  modelling over the whole sequence, which teaches a from-scratch model the titles themselves); at
  inference the prompt ends with ``<|sep|>`` and a name is sampled up to the next ``<|sep|>``.
* ``model_folder=<path>``: a user's own checkpoint (GPT-2, SmolLM, Qwen, ...), fine-tuned with LoRA (peft)
  on the paper's chat prompt (the model's chat template when it has one), with the loss on the target name
  only, as in the paper's fine-tuning. Only the adapter's weights are saved; the folder is read again on load.

Sampling follows the paper's best setting (n=20 samples, temperature 0.25, top_p 1) with a torch generator
seeded per session, one session at a time and without padding, so a session's names never depend on the
other sessions of a batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from core.llm import LLMError
from core.llm.prompts import SYSTEM_PROMPT, chat_messages, user_message
from core.common import Progress

if TYPE_CHECKING:
    from core.models.llmseqprompt import LLMSeqPromptConfig

SCRATCH_LABEL = "GPT-2 architecture trained from scratch on this dataset's train sessions (not a pretrained LLM)"
BOS, SEP = "<|endoftext|>", "<|sep|>"
IGNORE = -100  # label of tokens that carry no loss
MAX_NAME_TOKENS = 64  # a generated name stops here (Beauty: titles average ~18 tokens; a few run past 64)
MAX_VALIDATION_EXAMPLES = 1000


class LocalLMError(LLMError):
    """A local model folder that cannot be used; the message says why in one sentence."""


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def _text(array: np.ndarray) -> str:
    return bytes(np.asarray(array, dtype=np.uint8)).decode("utf-8")


def session_seed(seed: int, names: Sequence[str]) -> int:
    """A generator seed from the model's seed and the prompt alone (not its position in a batch)."""
    digest = hashlib.sha256(json.dumps([seed, list(names)]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class LocalLM:
    """Train (or LoRA-fine-tune) and sample a causal LM; see the module docstring."""

    def __init__(self, config: "LLMSeqPromptConfig") -> None:
        self.config = config
        self.model: torch.nn.Module | None = None
        self.tokenizer = None  # tokenizers.Tokenizer (scratch) or a transformers tokenizer (folder)
        self.max_new_tokens = 0
        self.history: dict[str, list[float]] = {"train_loss": [], "validation_loss": []}

    @property
    def from_scratch(self) -> bool:
        return not self.config.model_folder

    @property
    def label(self) -> str:
        return SCRATCH_LABEL if self.from_scratch else f"{self.config.model_folder} fine-tuned with LoRA"

    # ------------------------------------------------------------------------------------ building
    def _train_tokenizer(self, titles: Sequence[str]):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=self.config.vocab_size, special_tokens=[BOS, SEP],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tokenizer.train_from_iterator([t for t in titles if t], trainer=trainer)
        return tokenizer

    def _scratch_model(self, vocab_size: int) -> torch.nn.Module:
        from transformers import GPT2Config, GPT2LMHeadModel

        c = self.config
        gpt = GPT2Config(vocab_size=vocab_size, n_positions=c.context_tokens, n_embd=c.n_embd, n_layer=c.n_layer,
                         n_head=c.n_head, bos_token_id=0, eos_token_id=0, loss_type="ForCausalLM")
        torch.manual_seed(c.seed)
        return GPT2LMHeadModel(gpt)

    def _load_folder(self):
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

    def _lora(self, model: torch.nn.Module) -> torch.nn.Module:
        from peft import LoraConfig, get_peft_model

        c = self.config
        lora = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        return get_peft_model(model, lora)

    # ------------------------------------------------------------------------------------ encoding
    def _name_ids(self, name: str) -> list[int]:
        if self.from_scratch:
            return self.tokenizer.encode(name, add_special_tokens=False).ids
        return self.tokenizer(name, add_special_tokens=False)["input_ids"]

    def _prompt_text(self, names: Sequence[str]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(chat_messages(names), tokenize=False, add_generation_prompt=True)
        return f"{SYSTEM_PROMPT}\n\n{user_message(names)}\n\nRecommendation:"

    def _prompt_ids(self, names: Sequence[str]) -> list[int]:
        """Token ids of a prompt, dropping the oldest names until it fits the context with a name to come."""
        budget = self.config.context_tokens - self.max_new_tokens
        names = list(names)
        while True:
            if self.from_scratch:
                bos, sep = self.tokenizer.token_to_id(BOS), self.tokenizer.token_to_id(SEP)
                ids = [bos] + [t for name in names for t in self._name_ids(name) + [sep]]
            else:
                ids = self.tokenizer(self._prompt_text(names), add_special_tokens=False)["input_ids"]
            if len(ids) <= budget or not names:
                return ids[-budget:] if len(ids) > budget else ids
            names = names[1:]

    def _example(self, names: Sequence[str], target: str) -> tuple[list[int], list[int]]:
        """(input ids, labels) of one training example."""
        prompt = self._prompt_ids(names)
        # A name longer than a generation may run is learned up to that length (it fits the context then).
        name = self._name_ids(target)[:self.max_new_tokens - 1]
        if self.from_scratch:
            ids = prompt + name + [self.tokenizer.token_to_id(SEP)]
            return ids, [IGNORE] + ids[1:]  # every name after the first token carries loss
        answer = name + [self.tokenizer.eos_token_id]
        return prompt + answer, [IGNORE] * len(prompt) + answer

    # ------------------------------------------------------------------------------------ training
    def fit(self, train: list[tuple[list[str], str]], validation: list[tuple[list[str], str]],
            titles: Sequence[str], progress: Progress | None = None) -> None:
        """Build the model and fine-tune it on (prompt names, target name) pairs; early stopping on the
        validation loss (the best epoch's weights are kept)."""
        if not train:
            raise LocalLMError("no training example: every train session has an untitled item or a single item.")
        c = self.config
        _use_thread_setting()
        if self.from_scratch:
            self.tokenizer = self._train_tokenizer(titles)
            self.model = self._scratch_model(self.tokenizer.get_vocab_size())
        else:
            self.tokenizer, base = self._load_folder()
            self.model = self._lora(base)
        longest = max(len(self._name_ids(t)) for t in titles if t) if any(titles) else 8
        self.max_new_tokens = min(longest + 2, MAX_NAME_TOKENS, c.context_tokens // 2)
        train_data = [self._example(n, t) for n, t in train]
        # The validation loss is measured on a seeded subset: a full pass over 20% of Beauty costs minutes.
        keep = np.random.default_rng(c.seed).permutation(len(validation))[:MAX_VALIDATION_EXAMPLES]
        val_data = [self._example(*validation[i]) for i in sorted(keep)]

        torch.manual_seed(c.seed)
        rng = np.random.default_rng(c.seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=c.learning_rate, weight_decay=0.01)
        steps_per_epoch = math.ceil(len(train_data) / c.batch_size)
        total = steps_per_epoch * c.epochs
        warmup = max(1, total // 20)
        # Linear warm-up, then cosine decay to 10% over the planned epochs.
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))))
        best, best_state, stale, step = math.inf, None, 0, 0
        started = time.perf_counter()
        for epoch in range(c.epochs):
            self.model.train()
            losses = []
            for batch in _length_batches(train_data, c.batch_size, rng):
                loss = self._loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                step += 1
                if progress and step % 10 == 0:
                    progress(step, total, f"epoch {epoch + 1}/{c.epochs}, loss {np.mean(losses[-50:]):.3f}, "
                                          f"{time.perf_counter() - started:.0f} s")
            validation_loss = self.validation_loss(val_data) if val_data else float(np.mean(losses))
            self.history["train_loss"].append(float(np.mean(losses)))
            self.history["validation_loss"].append(validation_loss)
            if progress:
                progress(step, total, f"epoch {epoch + 1}/{c.epochs}: validation loss {validation_loss:.3f}")
            if validation_loss < best - 1e-4:
                best, stale = validation_loss, 0
                best_state = {k: v.detach().clone() for k, v in self._trainable_state().items()}
            else:
                stale += 1
                if stale >= c.patience:
                    break
        if best_state is not None:
            self._load_trainable_state(best_state)
        self.model.eval()

    def _loss(self, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        width = max(len(ids) for ids, _ in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (x, y) in enumerate(batch):
            ids[row, :len(x)] = torch.tensor(x)
            labels[row, :len(y)] = torch.tensor(y)
            mask[row, :len(x)] = 1
        return self.model(input_ids=ids, attention_mask=mask, labels=labels).loss

    @torch.no_grad()
    def validation_loss(self, data: list[tuple[list[int], list[int]]]) -> float:
        self.model.eval()
        total, count = 0.0, 0
        for start in range(0, len(data), self.config.batch_size):
            batch = data[start:start + self.config.batch_size]
            n = sum(sum(1 for y in labels[1:] if y != IGNORE) for _, labels in batch)
            total += float(self._loss(batch)) * n
            count += n
        return total / max(count, 1)

    # ------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, prompts: Sequence[Sequence[str]], progress: Progress | None = None) -> list[list[str]]:
        """``n_samples`` names for each prompt (a list of item names, oldest first)."""
        c = self.config
        _use_thread_setting()
        self.model.eval()
        if self.from_scratch:
            stops = {self.tokenizer.token_to_id(SEP), self.tokenizer.token_to_id(BOS)}
        else:
            stops = {self.tokenizer.eos_token_id}
        out = []
        for i, names in enumerate(prompts):
            generator = torch.Generator().manual_seed(session_seed(c.seed, names))
            ids = torch.tensor([self._prompt_ids(names)], dtype=torch.long)
            tokens = _sample_rows(self.model, ids, c.n_samples, c.temperature, c.top_p, self.max_new_tokens,
                                  stops, generator)
            out.append([self._decode(row, stops) for row in tokens])
            if progress and (i + 1) % 10 == 0:
                progress(i + 1, len(prompts), "generating names")
        return out

    def _decode(self, row: list[int], stops: set[int]) -> str:
        cut = next((j for j, t in enumerate(row) if t in stops), len(row))
        text = self.tokenizer.decode(row[:cut], skip_special_tokens=True)
        return text.strip().split("\n")[0].strip()

    # ------------------------------------------------------------------------------------ state
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        if self.from_scratch:
            return {k: v for k, v in self.model.state_dict().items() if k != "lm_head.weight"}  # tied to wte
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model)

    def _load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.from_scratch:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            if unexpected or set(missing) - {"lm_head.weight"}:
                raise LocalLMError(f"saved weights do not fit the model (missing {missing}, unexpected {unexpected}).")
            self.model.tie_weights()
        else:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, state)

    def state(self) -> dict[str, np.ndarray]:
        arrays = {f"lm.{k}": v.detach().cpu().numpy() for k, v in self._trainable_state().items()}
        arrays["lm_max_new_tokens"] = np.array([self.max_new_tokens], dtype=np.int64)
        arrays["lm_history"] = np.array([self.history["train_loss"], self.history["validation_loss"]],
                                        dtype=np.float64).reshape(2, -1)
        if self.from_scratch:
            arrays["lm_tokenizer_json"] = _bytes(self.tokenizer.to_str())
        return arrays

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        if self.from_scratch:
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_str(_text(arrays["lm_tokenizer_json"]))
            self.model = self._scratch_model(self.tokenizer.get_vocab_size())
        else:
            self.tokenizer, base = self._load_folder()
            self.model = self._lora(base)
        self._load_trainable_state({k[3:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                                    if k.startswith("lm.")})
        self.max_new_tokens = int(arrays["lm_max_new_tokens"][0])
        history = arrays["lm_history"]
        self.history = {"train_loss": history[0].tolist(), "validation_loss": history[1].tolist()}
        self.model.eval()


def _use_thread_setting() -> None:
    """The project's torch thread count, ``LLMSEQ_TORCH_THREADS`` (the tests use one: tiny models run far
    faster on one thread when other jobs share the two cores); torch's default when unset."""
    wanted = os.environ.get("LLMSEQ_TORCH_THREADS")
    if wanted:
        torch.set_num_threads(max(1, int(wanted)))


def _length_batches(data: list, batch_size: int, rng: np.random.Generator) -> list[list]:
    """Shuffled batches of similar-length examples (less padding): shuffle, sort within chunks of 50
    batches by length, cut into batches, shuffle the batches."""
    order = rng.permutation(len(data))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: len(data[i][0]))
        batches += [[data[i] for i in part[j:j + batch_size]] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _sample_rows(model: torch.nn.Module, prompt: torch.Tensor, n: int, temperature: float, top_p: float,
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
        token = _next_token(logits, temperature, top_p, generator)
        token = torch.where(done, stop_ids[0], token)
        rows.append(token)
        done |= torch.isin(token, stop_ids)
        if bool(done.all()):
            break
        output = model(input_ids=token[:, None], cache=cache, use_cache=True)
        cache, logits = output.cache, output.logits[:, -1]
    return torch.stack(rows, dim=1).tolist() if rows else [[] for _ in range(n)]


def _next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
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
