"""The one torch training loop: the sequential models (GRU4Rec, SASRec, BERT4Rec, their LLM2 twins) and
LLMSeqPrompt's local language model.

As the authors' ``NeuralModel.train``, 10% of the train sessions are held out (at most 2,000; the paper:
500, see ``SequentialConfig``); after every epoch the model ranks the full catalog for their prompts (all but
the last item) and NDCG@20 of the last item is measured; training stops when it has not improved for
``patience`` epochs and the best epoch's weights are restored. The test split is never seen here. Which
sessions are held out: the paper's random sample (the default), or the **latest** train sessions in time —
shaped like the test split, which is the latest sessions of all, but then missing from training (see
``hold_out``; on Beauty's last fold that cost more than it gained: the README's figures).

AdamW (decoupled weight decay, as the authors' Keras ``AdamW``), optional gradient-norm clipping, optional
bf16 autocast (``autocast_dtype``), any torch device (``resolve_device``), and a progress callback, throttled
so that a Streamlit bar is not redrawn hundreds of times a second.

Data-parallel training (issue 16): when torch.distributed is initialised with more than one process (``torchrun``
sets RANK, WORLD_SIZE, MASTER_ADDR...; :func:`init_distributed` starts the process group from them: gloo for CPU
tensors, nccl for CUDA ones), :func:`train` wraps the loss in torch's DistributedDataParallel. Every process
builds the same epoch batches from the same seed and takes its own rows of each (``shard``, e.g.
``SequentialRecommender.shard_batch``), scaled so that DDP's average of the gradients is the gradient of the
one-process loss over the whole batch: the global batch is the model's ``batch_size``, whatever the number of
processes, and the loss curve is the one-process curve (a test holds it). Rank 0 validates and broadcasts the
score, so every process stops at the same epoch; only rank 0 reports progress (and the CLI saves only there).
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from core import metrics
from core.common import ConfigError, Progress, UserError


def configure_torch() -> int:
    """Intra-op threads = the cores this process may use (``LLMSEQ_TORCH_THREADS`` overrides; divided among
    torchrun's ``LOCAL_WORLD_SIZE`` processes on this machine); one inter-op
    thread, since the models run one op at a time (oversubscribing 2 cores slows small matmuls down).
    Denormal floats are flushed to zero: early in training Adam's tiny second moments are denormals, which
    made the first epochs ~50x slower on this CPU (measured: 4.2 s instead of 0.08 s per toy epoch)."""
    torch.set_flush_denormal(True)
    wanted = os.environ.get("LLMSEQ_TORCH_THREADS")
    threads = int(wanted) if wanted else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    if not wanted:  # torchrun's processes on one machine share its cores
        threads //= max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    torch.set_num_threads(max(1, threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process (only allowed before any parallel work)
        pass
    return torch.get_num_threads()


def resolve_device(choice: str) -> torch.device:
    """``"auto"``: CUDA when torch sees a GPU, else the CPU; ``"cpu"``; ``"cuda"`` (raises
    :class:`ConfigError` when there is no CUDA GPU, rather than silently training on the CPU)."""
    if choice not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"option 'device' must be one of auto, cpu, cuda; got {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("option 'device' is 'cuda', but torch sees no CUDA GPU here; use 'auto' or 'cpu'")
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu")


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 matrix products run natively (not emulated): a CUDA GPU that says so, or a CPU with
    AVX-512 BF16 or AMX (oneDNN uses them; elsewhere bf16 on the CPU is slower than float32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if callable(check))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step: ``"float32"`` -> None (no autocast); ``"bfloat16"`` -> bf16
    (raises :class:`ConfigError` where bf16 is not native); ``"auto"`` -> bf16 on a CUDA GPU with bf16, else
    None. Not on the CPU by default: measured on an AMX CPU (bench/train_speed.py), bf16 gave no faster epoch
    (SASRec 11.0 vs 11.1 s, BERT4Rec 20.2 vs 21.3 s a pass), since most of an epoch is the float32 softmax
    over the catalog. Only the training step is autocast; ranking (validation, evaluation) stays float32."""
    if precision == "float32":
        return None
    if precision not in ("auto", "bfloat16"):
        raise ConfigError(f"option 'precision' must be one of auto, float32, bfloat16; got {precision!r}")
    native = bf16_supported(device)
    if precision == "bfloat16" and not native:
        raise ConfigError(f"option 'precision' is 'bfloat16', but this {device.type} has no native bf16 "
                          "(AVX-512 BF16/AMX or a bf16 GPU); use 'auto' or 'float32'")
    return torch.bfloat16 if native and (precision == "bfloat16" or device.type == "cuda") else None


def world() -> tuple[int, int]:
    """(rank, world size) of this process in torch.distributed; (0, 1) when it is not initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Start torch.distributed from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
    LOCAL_RANK) when WORLD_SIZE > 1 and it is not started yet; returns :func:`world`. Backend: gloo for CPU
    tensors and, where torch sees a GPU, nccl for CUDA ones (each process on GPU ``LOCAL_RANK``). Raises
    :class:`ConfigError` when torch has no distributed support or the environment is incomplete."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 or (dist.is_available() and dist.is_initialized()):
        return world()
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE asks for data-parallel training, but this torch has no torch.distributed")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ConfigError(f"WORLD_SIZE is set but {', '.join(missing)} not: start the processes with torchrun "
                          "(or python -m core train --processes N)")
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0") or 0) % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend=backend)
    return world()


def _agree(value: float, device: torch.device, op: str) -> float:
    """``value`` made the same on every process: rank 0's (``op="broadcast"``) or the mean over the ranks."""
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    if op == "broadcast":
        dist.broadcast(tensor, src=0)
    else:
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return float(tensor.item())


class _BatchLoss(torch.nn.Module):
    """``batch_loss`` as a module's forward, so that DistributedDataParallel sees the step (its gradient
    exchange starts from the forward it wraps) while the loss code stays the model's."""

    def __init__(self, module: torch.nn.Module, batch_loss: Callable[[Any], torch.Tensor]) -> None:
        super().__init__()
        self.module, self.batch_loss = module, batch_loss

    def forward(self, batch: Any) -> torch.Tensor:
        return self.batch_loss(batch)


class TrainingDiverged(UserError, FloatingPointError):
    """The loss became NaN or infinite: the options (learning rate, clipping) do not suit the data."""


def hold_out(sessions: Sequence[np.ndarray], fraction: float, max_sessions: int,
             rng: np.random.Generator, latest: bool = False,
             keep_prompts: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split train sessions (oldest first, as ``Split.train``) into (train, held out) for early stopping:
    ``ceil(fraction * n)`` sessions, at most ``max_sessions``, with 2+ items (a prompt and a target).

    ``latest=False``: a random sample (the paper: 10%, at most 500). ``latest=True``: the latest sessions in
    time, treated as the test split is (``core.data``): items never seen in the kept train sessions are
    dropped from them, and a session left with fewer than 2 items is not scored (it is not trained on
    either). ``keep_prompts=True`` (with ``latest``): only each held-out session's last item is withheld; its
    prompt (all but the last item) stays in training when it has 2+ items, so the newest sessions still teach
    the model; a session is scored when its target occurs in training (kept sessions or prompts), with its
    prompt's unseen items dropped (the "last item of the latest sessions" validation of the time-to-split
    study, RecSys 2025). With fewer than 2 sessions nothing is held out."""
    eligible = np.array([i for i, s in enumerate(sessions) if len(s) >= 2], dtype=np.int64)
    n_held = min(math.ceil(fraction * len(sessions)), max_sessions, len(eligible), len(sessions) - 1)
    if n_held <= 0:
        return list(sessions), []
    held = eligible[-n_held:] if latest else np.sort(rng.choice(eligible, size=n_held, replace=False))
    is_held = np.zeros(len(sessions), dtype=bool)
    is_held[held] = True
    kept = [s for s, h in zip(sessions, is_held) if not h]
    if not latest:
        return kept, [sessions[i] for i in held]
    if keep_prompts:
        kept += [sessions[i][:-1] for i in held if len(sessions[i]) >= 3]
    seen = np.unique(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
    if keep_prompts:  # a session whose target was never seen is not scored (not cut to a trained transition)
        prompts = [(np.asarray(sessions[i][:-1]), sessions[i][-1]) for i in held if np.isin(sessions[i][-1], seen)]
        scored = [np.append(p[np.isin(p, seen)], target) for p, target in prompts]
    else:
        scored = [np.asarray(sessions[i])[np.isin(sessions[i], seen)] for i in held]
    return kept, [s for s in scored if len(s) >= 2]


def validation_ndcg(recommend: Callable[[list[np.ndarray], int], np.ndarray],
                    held_out: Sequence[np.ndarray], k: int = 20) -> float:
    """NDCG@k of each held-out session's last item given the rest (seen items excluded, as in evaluation)."""
    prompts = [s[:-1] for s in held_out]
    targets = np.array([s[-1] for s in held_out], dtype=np.int64)
    return float(metrics.ndcg(recommend(prompts, k), targets, k).mean())


@dataclass
class History:
    """What happened per epoch; saved with the weights so the app can draw the curve."""

    loss: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)  # the validation score (NDCG@20, or a loss) per epoch
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1  # 0-based; -1 when nothing was held out (the last epoch is kept)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"history.loss": np.asarray(self.loss, dtype=np.float64),
                "history.validation_ndcg": np.asarray(self.validation, dtype=np.float64),  # the name saves carry
                "history.seconds": np.asarray(self.seconds, dtype=np.float64),
                "history.best_epoch": np.asarray([self.best_epoch], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "History":
        if "history.loss" not in arrays:
            return cls()
        return cls(loss=arrays["history.loss"].tolist(), validation=arrays["history.validation_ndcg"].tolist(),
                   seconds=arrays["history.seconds"].tolist(), best_epoch=int(arrays["history.best_epoch"][0]))


Scheduler = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]


def warmup_cosine(warmup_share: float = 0.05, floor: float = 0.1) -> Scheduler:
    """Learning rate: linear warm-up over the first ``warmup_share`` of the steps, then cosine decay to ``floor``
    times the peak at the last planned step (the usual schedule for fine-tuning a language model)."""

    def make(optimizer: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
        warmup = max(1, int(total * warmup_share))

        def factor(step: int) -> float:
            cosine = 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
            return min(1.0, (step + 1) / warmup) * (floor + (1 - floor) * cosine)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    return make


def linear_warmup(steps: int) -> Scheduler:
    """Learning rate: ``(step + 1) / steps`` of the peak over the first ``steps`` steps, then the peak (the
    warm-up of BERT, Devlin et al. 2019, without its decay): a post-LN transformer started at the full rate can
    sit for many epochs on a popularity-like solution."""

    def make(optimizer: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(steps, 1)))

    return make


def train(module: torch.nn.Module, *, epoch_batches: Callable[[np.random.Generator], list],
          batch_loss: Callable[[Any], torch.Tensor], validate: Callable[[], float] | None,
          learning_rate: float, weight_decay: float, clip_norm: float | None, max_epochs: int,
          patience: int, seed: int, progress: Progress | None = None, label: str = "training",
          higher_is_better: bool = True, min_delta: float = 0.0, scheduler: Scheduler | None = None,
          validation_name: str = "validation NDCG@20",
          snapshot: Callable[[], dict[str, torch.Tensor]] | None = None,
          restore: Callable[[dict[str, torch.Tensor]], None] | None = None,
          autocast: torch.dtype | None = None, epoch_name: str = "epoch",
          shard: Callable[[Any, int, int], Any] | None = None) -> History:
    """Fit the trainable parameters of ``module`` with AdamW; after each epoch ``validate()`` decides early
    stopping (an improvement is a change of more than ``min_delta`` in the better direction).

    ``epoch_batches(rng)`` builds one epoch's batches (shuffled, re-masked...), ``batch_loss(batch)`` returns
    the mean loss of a batch, ``scheduler(optimizer, total_steps)`` an optional per-step learning-rate schedule.
    The best epoch's weights are restored (``snapshot``/``restore`` default to the whole state dict; a LoRA
    model passes its adapter's). With ``validate=None`` it runs ``max_epochs`` epochs and keeps the last
    weights. ``autocast`` (e.g. ``torch.bfloat16``) runs ``batch_loss`` under autocast on the module's
    device; the weights and the optimizer stay float32. ``epoch_name`` names a unit of training in the
    progress messages (BERT4Rec's is a "pass"). Raises :class:`TrainingDiverged` when the loss becomes NaN or
    infinite.

    Data-parallel (torch.distributed initialised, more than one process; module docstring): ``shard(batch,
    rank, world)`` returns this process's part of a batch, weighted so that the mean of the ranks' gradients
    (what DDP computes) is the gradient of the whole batch's ``batch_loss``; the loss recorded per epoch is the
    whole batches' (the mean of the ranks'). Raises :class:`ConfigError` when no ``shard`` is given then.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    rank, size = world()
    params = [p for p in module.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    step: Callable[[Any], torch.Tensor] = batch_loss
    if size > 1:
        if shard is None:
            raise ConfigError(f"{label}: this model cannot train data-parallel (torch.distributed has {size} "
                              "processes); run it in one process")
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(_BatchLoss(module, batch_loss),
                                          device_ids=[device] if device.type == "cuda" else None)
        step = lambda batch: wrapped(shard(batch, rank, size))  # noqa: E731
        progress = progress if rank == 0 else None
    # fused: one kernel for all parameters (the same update; the per-parameter loop cost ~5% of an epoch)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, fused=True)
    snapshot = snapshot or (lambda: copy.deepcopy(module.state_dict()))
    restore = restore or module.load_state_dict
    history = History()
    sign = 1.0 if higher_is_better else -1.0
    best_score, best_state, waited, schedule = -math.inf, None, 0, None
    report = _Throttled(progress)
    device_type = device.type
    for epoch in range(max_epochs):
        start = time.perf_counter()
        module.train()
        batches = epoch_batches(rng)
        if scheduler is not None and schedule is None:
            schedule = scheduler(optimizer, len(batches) * max_epochs)
        total_loss = 0.0
        for done, batch in enumerate(batches, start=1):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
                loss = step(batch)
            # the whole batch's loss, the same on every rank (so they all stop here together when it diverges)
            value = loss.item() if size == 1 else _agree(loss.item(), device, "mean")
            if not math.isfinite(value):
                raise TrainingDiverged(f"{label}: the loss became {value} in {epoch_name} {epoch + 1}; "
                                       "lower the learning rate or set clip_norm")
            loss.backward()
            if clip_norm:
                torch.nn.utils.clip_grad_norm_(params, clip_norm)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total_loss += value
            # the bar counts the whole run's batches (it never restarts at each epoch); early stopping may end it
            # sooner, which the text says
            report(epoch * len(batches) + done, max_epochs * len(batches),
                   f"{label} {epoch_name} {epoch + 1} of {max_epochs} (at most; early stopping may end sooner): loss "
                   f"{total_loss / done:.3f}"
                   + (f", best {validation_name} {sign * best_score:.4f}" if best_state is not None else ""))
        module.eval()
        score = validate() if validate is not None and rank == 0 else math.nan
        if validate is not None and size > 1:  # rank 0's score decides early stopping on every rank
            score = _agree(score, device, "broadcast")
        history.loss.append(total_loss / max(len(batches), 1))
        history.validation.append(score)
        history.seconds.append(time.perf_counter() - start)
        report((epoch + 1) * len(batches), max_epochs * len(batches), f"{label} {epoch_name} {epoch + 1} of "
               f"{max_epochs}: " + (
            f"{validation_name} {score:.4f}" if validate is not None else "no held-out sessions, no early stopping"),
            force=True)
        if validate is None:
            continue
        if sign * score > best_score + min_delta:
            best_score, waited, history.best_epoch = sign * score, 0, epoch
            best_state = snapshot()
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        restore(best_state)
    module.eval()
    return history


class _Throttled:
    """Forward progress at most every ``interval`` seconds (and always when forced)."""

    def __init__(self, progress: Progress | None, interval: float = 0.25) -> None:
        self.progress, self.interval, self.last = progress, interval, -math.inf

    def __call__(self, done: int, total: int, message: str, force: bool = False) -> None:
        now = time.perf_counter()
        if self.progress and (force or done == total or now - self.last >= self.interval):
            self.last = now
            self.progress(done, total, message)

