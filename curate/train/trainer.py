"""The training loop: AdamW + warmup/cosine, bf16 autocast over fp32 weights, DDP or FSDP2 via torchrun,
exact checkpoint/resume (model, optimizer, schedule, every rank's data position, RNG), periodic held-out
eval, and logs (console, `train.jsonl`, optionally TensorBoard)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import torch
import torch.distributed as dist
from tokenizers import Tokenizer
from torch import nn

from curate import train_runs
from curate.core.errors import CurateError
from curate.core.tokenizer import load as load_tokenizer
from curate.train import checkpoint
from curate.train import data as D
from curate.train import evaluate as E
from curate.train import tasks as bundled
from curate.train.flops import mfu, peak_flops
from curate.train.model import GPT
from curate.train.presets import ModelConfig, get_preset, with_vocab

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule

T = TypeVar("T")
# of the last log record (with an eval: of the last eval), returned by train()
SUMMARY_KEYS = ("step", "loss", "eval_loss", "eval_ppl", "tokens_per_s", "eval_tasks")


@dataclass
class TrainConfig:
    """Everything a run needs; None means "the preset's value"."""

    data: str
    preset: str = "tiny"
    steps: int = 200
    stop_at: int | None = None  # stop (checkpointed) early, keeping the schedule of `steps`; then --resume
    output: str = "train-out"
    device: str = "auto"  # auto | cpu | cuda
    resume: bool = False
    seq_len: int | None = None
    batch_size: int | None = None  # sequences per micro-batch per rank
    grad_accum: int | None = None
    lr: float | None = None
    warmup_steps: int | None = None
    weight_decay: float | None = None
    min_lr_ratio: float | None = None
    betas: tuple[float, float] = (0.9, 0.95)  # GPT-3
    grad_clip: float = 1.0
    seed: int = 0
    eval_fraction: float = 0.01  # of documents, by id hash
    eval_every: int = 100
    eval_batches: int = 20
    # Bundled tasks scored every eval_every steps (curate.train.tasks; "reference" is the clean-text
    # bits-per-byte set, the same for every dataset, so runs on different data compare), on the first
    # eval_limit items of each.
    eval_tasks: list[str] = field(default_factory=list)
    eval_limit: int = 200
    log_every: int = 10
    checkpoint_every: int = 0  # 0: only at the end
    dtype: str = "auto"  # auto (bf16 on cuda, fp32 on cpu) | bf16 | fp32
    compile: bool | None = None  # None: on for cuda
    activation_checkpointing: bool = False
    doc_mask: bool = False  # mask attention across packed documents
    parallel: str = "ddp"  # ddp | fsdp, when launched by torchrun with more than one process
    prefetch: int = 4
    tensorboard: bool = False
    peak_tflops: float | None = None  # override the device's dense bf16 peak for MFU
    quiet: bool = False


def _given(value: T | None, default: T) -> T:
    return default if value is None else value


@dataclass(frozen=True)
class Hyperparameters:
    """The values TrainConfig leaves to the preset (None there), resolved once into concrete ones."""

    seq_len: int
    batch_size: int  # sequences per micro-batch per rank
    grad_accum: int
    lr: float
    warmup_steps: int
    weight_decay: float
    min_lr_ratio: float

    @classmethod
    def of(cls, config: TrainConfig) -> Hyperparameters:
        preset = get_preset(config.preset)
        return cls(
            seq_len=_given(config.seq_len, preset.model.seq_len),
            batch_size=_given(config.batch_size, preset.batch_size),
            grad_accum=_given(config.grad_accum, preset.grad_accum),
            lr=_given(config.lr, preset.lr),
            warmup_steps=_given(config.warmup_steps, preset.warmup_steps),
            weight_decay=_given(config.weight_decay, preset.weight_decay),
            min_lr_ratio=_given(config.min_lr_ratio, preset.min_lr_ratio),
        )


def resolved(config: TrainConfig) -> TrainConfig:
    """Fill preset defaults so the saved config states every value used."""
    return replace(config, **asdict(Hyperparameters.of(config)))


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to the peak, then cosine decay to min_ratio * peak at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; a plain `curate train` is one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))


def _device_kind(requested: str) -> str:
    kind = ("cuda" if torch.cuda.is_available() else "cpu") if requested == "auto" else requested
    if kind not in ("cpu", "cuda"):
        raise CurateError(f"--device {requested}: choose auto, cpu or cuda")
    if kind == "cuda" and not torch.cuda.is_available():
        raise CurateError("--device cuda: this torch build or machine has no CUDA device; use --device cpu")
    return kind


def _device(kind: str, env: Dist) -> torch.device:
    if kind == "cuda":
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return torch.device("cpu")


def _autocast_dtype(requested: str, on_cuda: bool) -> torch.dtype | None:
    """bf16 autocast over fp32 weights, or None for plain fp32."""
    dtype = requested if requested != "auto" else ("bf16" if on_cuda else "fp32")
    if dtype not in ("bf16", "fp32"):
        raise CurateError(f"--dtype {dtype}: choose auto, bf16 or fp32")
    return torch.bfloat16 if dtype == "bf16" else None


def _shard(model: GPT, param_dtype: torch.dtype | None) -> FSDPModule:
    """FSDP2: each block is its own shard group (gathered just before it runs), then the rest."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    for block in model.blocks:
        fully_shard(block, mp_policy=policy)
    return fully_shard(model, mp_policy=policy)


def _optimizer(
    model: nn.Module, hparams: Hyperparameters, betas: tuple[float, float], fused: bool
) -> torch.optim.AdamW:
    """AdamW (decoupled decay, Loshchilov & Hutter) on matrices only; norms' gains are not decayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": hparams.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=hparams.lr, betas=betas, eps=1e-8, fused=fused)


class Interval:
    """Optimizer steps and seconds of training since the last log record (checkpoint saves excluded)."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.steps, self._seconds, self._since = 0, 0.0, time.perf_counter()

    def seconds(self) -> float:
        return self._seconds + time.perf_counter() - self._since

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._seconds += time.perf_counter() - self._since
        try:
            yield
        finally:
            self._since = time.perf_counter()


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config = resolved(config)  # every value stated, as the checkpoint records it
        self.hparams = hparams = Hyperparameters.of(config)
        self.output = Path(config.output)
        device_kind = _device_kind(config.device)
        self.env = _init_distributed(device_kind)
        self.device = _device(device_kind, self.env)
        self.shards = D.ShardSet.open(config.data)
        base = get_preset(config.preset).model
        self.model_config: ModelConfig = with_vocab(
            replace(base, seq_len=hparams.seq_len), self.shards.vocab_size
        )
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            torch.set_float32_matmul_precision("high")  # TF32 for the few fp32 matmuls outside autocast
        self.autocast_dtype = _autocast_dtype(config.dtype, on_cuda)
        if self.env.world > 1 and config.parallel not in ("ddp", "fsdp"):
            raise CurateError(f"--parallel {config.parallel}: choose ddp or fsdp")

        # model: fp32 weights, sharded (FSDP) or replicated (DDP) over ranks, optionally compiled
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.raw = GPT(self.model_config, config.activation_checkpointing).to(self.device)
        sharded = self.env.world > 1 and config.parallel == "fsdp"
        self.fsdp: FSDPModule | None = _shard(self.raw, self.autocast_dtype) if sharded else None
        self.optimizer = _optimizer(self.raw, hparams, config.betas, fused=on_cuda)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: lr_factor(step, hparams.warmup_steps, config.steps, hparams.min_lr_ratio),
        )
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        if self.env.world > 1 and not sharded:
            # no buffer sync per forward: the only buffers are the RoPE tables, identical on every rank
            self.ddp = nn.parallel.DistributedDataParallel(
                self.raw, device_ids=[self.device.index] if on_cuda else None, forward_sync_buffers=False
            )
        model: nn.Module = self.ddp if self.ddp is not None else self.raw
        if config.compile if config.compile is not None else on_cuda:
            model = cast(nn.Module, torch.compile(model))  # an OptimizedModule wrapping `model`
        self.model = model

        # where training stands, and what a checkpoint saves of it
        self.step = 0
        self.position = D.Position()
        self.checkpoints = checkpoint.Checkpoints(self.output)
        self.parts = checkpoint.TrainingParts(
            self.raw, self.optimizer, self.scheduler, sharded, self.env.rank, self.env.world
        )
        self.tokens_per_step = hparams.batch_size * hparams.seq_len * hparams.grad_accum * self.env.world
        self.eval_tasks = bundled.check_tasks(config.eval_tasks) if config.eval_tasks else []
        self._eval_items: dict[str, list[bundled.Item]] = {}
        self.eval_skipped: str | None = None
        peak = config.peak_tflops * 1e12 if config.peak_tflops else None
        if peak is None and on_cuda:
            peak = peak_flops(torch.cuda.get_device_name(self.device))
        self.peak = peak

    # ------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Full (unsharded) state on rank 0; every rank's data position and RNG."""
        configs = {"model_config": asdict(self.model_config), "train_config": asdict(self.config)}
        return checkpoint.capture(self.parts, self.step, self.position, configs)

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        self.step, self.position = checkpoint.restore(self.parts, state, path, asdict(self.model_config))

    def save(self) -> None:
        state = self.state_dict()
        if self.env.main:
            self.checkpoints.save(self.step, state)
        if self.env.world > 1:
            dist.barrier()

    def _resume(self) -> bool:
        """Continue from the latest checkpoint when --resume asks to; never silently overwrite one."""
        latest = self.checkpoints.latest()
        if latest is None:
            if self.config.resume:
                self._say(f"no checkpoint in {self.checkpoints.folder} yet: starting from step 0")
            return False
        if not self.config.resume:
            raise CurateError(f"{self.output} already holds checkpoints; pass --resume or another --output")
        self.load_state_dict(checkpoint.load(latest), latest)
        self._say(f"resumed from {latest} at step {self.step}")
        return True

    # ------------------------------------------------------------------------------ data

    def _train_stream(self) -> D.TokenStream:
        """This rank's share of the training split (units dealt round-robin after a seeded shuffle)."""
        return D.TokenStream(
            self.shards,
            self.hparams.seq_len,
            eval_fraction=self.config.eval_fraction,
            rank=self.env.rank,
            world=self.env.world,
            seed=self.config.seed,
        )

    def _to_tensors(self, batch: D.Batch) -> dict[str, Any]:
        pin = self.device.type == "cuda"
        tensors = {"idx": torch.from_numpy(batch.inputs), "targets": torch.from_numpy(batch.targets)}
        if self.config.doc_mask:
            tensors["doc_ids"] = torch.from_numpy(D.document_ids(batch.inputs, self.shards.eos_id))
        if pin:
            tensors = {k: v.pin_memory() for k, v in tensors.items()}
        return {"tensors": tensors, "position": batch.position, "n_tokens": batch.n_tokens}

    def _forward(self, model: nn.Module, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        on_device = {k: v.to(self.device, non_blocking=True) for k, v in tensors.items()}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_dtype is not None):
            return model(**on_device)

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean loss per target token over the held-out split's first `eval_batches` x world batches.

        Every rank reads the same (small) held-out stream and takes every world-th batch, so even a
        held-out set of a few documents is used in full. Ranks left a batch short repeat one at zero
        weight: every rank runs the same number of forwards, as FSDP's all-gathers need.
        """
        self.model.eval()
        world, rank = self.env.world, self.env.rank
        stream = D.TokenStream(
            self.shards,
            self.hparams.seq_len,
            split="eval",
            eval_fraction=self.config.eval_fraction,
            shuffle=False,
        )
        held_out = list(
            itertools.islice(
                D.batches(stream, self.hparams.batch_size, epochs=1), self.config.eval_batches * world
            )
        )
        mine = held_out[rank::world]
        rounds = -(-len(held_out) // world)
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        for index in range(rounds):
            batch, weight = (mine[index], 1) if index < len(mine) else (held_out[0], 0)
            targets = weight * int((batch.targets != D.IGNORE_INDEX).sum())
            loss = self._forward(self.model, self._to_tensors(batch)["tensors"]).double()
            total += torch.stack([loss * targets, torch.tensor(float(targets), device=self.device).double()])
        if world > 1:
            dist.all_reduce(total)
        self.model.train()
        return float(total[0] / total[1]) if total[1] > 0 else None

    # ------------------------------------------------------------------------------ loop

    def _log(self, record: dict[str, Any], writers: dict[str, Any]) -> None:
        if not self.env.main:
            return
        writers["jsonl"].write(json.dumps(record) + "\n")
        writers["jsonl"].flush()
        if "tensorboard" in writers:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "step":
                    writers["tensorboard"].add_scalar(key, value, record["step"])
        if not self.config.quiet:
            parts = [
                f"step {record['step']:>6}",
                f"loss {record['loss']:.4f}",
                f"lr {record['lr']:.2e}",
                f"grad {record['grad_norm']:.2f}",
                f"{record['tokens_per_s']:,.0f} tok/s",
            ]
            if record.get("mfu") is not None:
                parts.append(f"mfu {100 * record['mfu']:.1f}%")
            if "eval_loss" in record:
                parts.append(f"eval {record['eval_loss']:.4f} (ppl {record['eval_ppl']:.1f})")
            for task, scores in record.get("eval_tasks", {}).items():
                parts.append(
                    f"{task} {scores['bpb']:.3f} bpb"
                    + (f" {scores['acc']:.3f} acc" if "acc" in scores else "")
                )
            print(" | ".join(parts), flush=True)

    def _writers(self, resumed: bool) -> dict[str, Any]:
        if not self.env.main:
            return {}
        self.output.mkdir(parents=True, exist_ok=True)
        log_path = self.output / "train.jsonl"
        kept = []
        if resumed and log_path.is_file():  # drop records a crashed run wrote after its last checkpoint
            kept = [
                line for line in log_path.read_text().splitlines() if json.loads(line)["step"] <= self.step
            ]
        log_path.write_text("".join(line + "\n" for line in kept))
        writers: dict[str, Any] = {"jsonl": open(log_path, "a")}  # noqa: SIM115 (closed at the end of train())
        if self.config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise CurateError(
                    "--tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            writers["tensorboard"] = SummaryWriter(str(self.output / "tensorboard"))
        return writers

    def _say(self, message: str) -> None:
        if self.env.main and not self.config.quiet:
            print(message, flush=True)

    def _sync_context(self, sync: bool) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
        if self.fsdp is not None:
            self.fsdp.set_requires_gradient_sync(sync)
        if self.ddp is not None and not sync:
            return self.ddp.no_sync()
        return contextlib.nullcontext()

    def _forward_backward(self, loader: D.Prefetcher) -> torch.Tensor:
        """`grad_accum` micro-batches, forward and backward; returns their mean loss (on the device)."""
        accum = self.hparams.grad_accum
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(accum):
            item = next(loader)
            with self._sync_context(micro == accum - 1):
                loss = self._forward(self.model, item["tensors"]) / accum
                loss.backward()
            loss_sum += loss.detach()
            self.position = item["position"]
        return loss_sum

    def _update(self) -> tuple[float, torch.Tensor]:
        """Clip, step the optimizer and the schedule; returns the lr this step used and the grad norm."""
        grad_norm = nn.utils.clip_grad_norm_(self.raw.parameters(), self.config.grad_clip)
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        return lr, grad_norm

    def _record(
        self, loss_sum: torch.Tensor, grad_norm: torch.Tensor, lr: float, interval: Interval
    ) -> dict[str, Any]:
        """The log record of this step: loss averaged over ranks, throughput and MFU over the interval."""
        if self.env.world > 1:
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        loss = loss_sum.item()  # also waits for the device, so the timing below is honest
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
            grad_norm = grad_norm.full_tensor()
        tokens_per_s = interval.steps * self.tokens_per_step / interval.seconds()
        return {
            "step": self.step,
            "loss": loss,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "tokens_per_s": tokens_per_s,
            "tokens": self.step * self.tokens_per_step,
            "mfu": mfu(tokens_per_s / self.env.world, self.model_config, self.peak),
            "position": self.position.to_dict(),
        }

    def _eval_due(self) -> bool:
        every = self.config.eval_every
        return every > 0 and (self.step % every == 0 or self.step == self.config.steps)

    def _add_eval(self, record: dict[str, Any]) -> None:
        eval_loss = self.evaluate()
        if eval_loss is not None:
            record.update(eval_loss=eval_loss, eval_ppl=math.exp(min(eval_loss, 50.0)))
        elif self.eval_skipped is None:
            self.eval_skipped = (
                f"--eval-fraction {self.config.eval_fraction} holds out no document of {self.shards.root}"
                " (too few documents); raise it, or score the shared reference text: --eval-tasks reference"
            )
            self._say(f"held-out eval skipped: {self.eval_skipped}")
        if self.eval_tasks:
            record["eval_tasks"] = self.evaluate_tasks()

    @torch.no_grad()
    def evaluate_tasks(self) -> dict[str, dict[str, float]]:
        """Bits-per-byte (and accuracy) on the bundled tasks; every rank runs the same forwards, as FSDP
        needs, and gets the same numbers."""
        self.raw.eval()

        def logits(idx: torch.Tensor) -> torch.Tensor:
            with torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.autocast_dtype is not None
            ):
                return cast(torch.Tensor, self.raw(idx))

        tokenizer = self.eval_tokenizer
        scores = E.evaluate_model(
            logits,
            tokenizer,
            self.shards.eos_id,
            self.hparams.seq_len,
            self.eval_tasks,
            self.config.eval_limit,
            self.hparams.batch_size,
            self.device,
            self._eval_items,
        )
        self.raw.train()
        return {
            task: {k: v for k, v in result.items() if k in ("bpb", "acc")}
            for task, result in scores["tasks"].items()
        }

    def _announce(self) -> None:
        self._say(
            f"{self.config.preset}: {self.raw.num_params() / 1e6:.1f}M parameters on {self.device} "
            f"x{self.env.world}, {self.tokens_per_step:,} tokens/step; data {self.shards.root} "
            f"({self.shards.total_tokens:,} tokens)"
        )

    def train(self) -> dict[str, Any]:
        """Train (or resume) up to `steps`, or `stop_at`; returns the last logged loss and eval."""
        c = self.config
        resumed = self._resume()
        self._announce()
        writers = self._writers(resumed)
        self._keep_tokenizer()
        batches = D.batches(self._train_stream(), self.hparams.batch_size, self.position)
        loader = D.Prefetcher(batches, c.prefetch, self._to_tensors)
        end = min(c.steps, c.stop_at or c.steps)
        summary: dict[str, Any] = {"output": str(self.output)}
        interval = Interval()
        try:
            while self.step < end:
                # forward backward update
                loss_sum = self._forward_backward(loader)
                lr, grad_norm = self._update()
                interval.steps += 1

                # timing and logging, with the held-out eval when due
                evaluate = self._eval_due()
                if evaluate or self.step % c.log_every == 0 or self.step == end:
                    record = self._record(loss_sum, grad_norm, lr, interval)
                    if evaluate:
                        self._add_eval(record)
                    self._log(record, writers)
                    summary.update({k: v for k, v in record.items() if k in SUMMARY_KEYS})
                    interval.restart()

                # checkpoint (the last one is written after the loop)
                if c.checkpoint_every and self.step % c.checkpoint_every == 0 and self.step < end:
                    with interval.paused():  # saving is not training throughput
                        self.save()
            self.save()
        finally:
            loader.close()
            for writer in writers.values():
                writer.close()
        summary["checkpoint"] = str(self.checkpoints.latest()) if self.env.main else None
        if self.eval_skipped:
            summary["eval_skipped"] = self.eval_skipped
        return summary

    @functools.cached_property
    def tokenizer_text(self) -> str:
        return E.dataset_tokenizer(self.shards.root)

    @functools.cached_property
    def eval_tokenizer(self) -> Tokenizer:
        return load_tokenizer(self.tokenizer_text)

    def _keep_tokenizer(self) -> None:
        """A copy of the dataset's tokenizer beside the checkpoints (what `curate eval` reads), and the
        run's line in the list of training runs the service charts."""
        if not self.env.main:
            return
        (self.output / E.TOKENIZER_COPY).write_text(self.tokenizer_text, encoding="utf-8")
        request = {"data": self.config.data, "preset": self.config.preset, "steps": self.config.steps}
        train_runs.register(self.output, request)


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; returns the last logged loss, eval loss/perplexity and checkpoint path."""
    trainer = Trainer(config)
    try:
        return trainer.train()
    finally:
        if trainer.env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
