"""The training loop: AdamW + warmup/cosine, bf16 autocast over fp32 weights, DDP or FSDP2 via torchrun,
exact checkpoint/resume (model, optimizer, schedule, every rank's data position, RNG), periodic held-out
eval, and logs (console, `train.jsonl`, optionally TensorBoard)."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from curate.core.errors import CurateError
from curate.train import data as D
from curate.train.flops import mfu, peak_flops
from curate.train.model import GPT
from curate.train.presets import ModelConfig, get_preset, with_vocab

CHECKPOINTS_KEPT = 2  # older checkpoints are deleted once a newer one is safely on disk


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


def resolved(config: TrainConfig) -> TrainConfig:
    """Fill preset defaults so the saved config states every value used."""
    preset = get_preset(config.preset)
    values = {
        "seq_len": preset.model.seq_len,
        "batch_size": preset.batch_size,
        "grad_accum": preset.grad_accum,
        "lr": preset.lr,
        "warmup_steps": preset.warmup_steps,
        "weight_decay": preset.weight_decay,
        "min_lr_ratio": preset.min_lr_ratio,
    }
    return replace(config, **{k: v for k, v in values.items() if getattr(config, k) is None})


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


def _optimizer(model: nn.Module, config: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW (decoupled decay, Loshchilov & Hutter) on matrices only; norms' gains are not decayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=1e-8, fused=fused)


class Checkpoints:
    """`DIR/checkpoints/step-NNNNNNNN.pt`, written atomically; `latest` names the newest complete one."""

    def __init__(self, output: Path):
        self.folder = output / "checkpoints"

    def latest(self) -> Path | None:
        pointer = self.folder / "latest"
        if not pointer.is_file():
            return None
        path = self.folder / pointer.read_text().strip()
        if not path.is_file():
            raise CurateError(
                f"{pointer} names {path.name}, which is missing; delete {pointer} to start over"
            )
        return path

    def save(self, step: int, state: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step-{step:08d}.pt"
        temporary = path.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, path)
        (self.folder / "latest.tmp").write_text(path.name + "\n")
        os.replace(self.folder / "latest.tmp", self.folder / "latest")
        for old in sorted(self.folder.glob("step-*.pt"))[:-CHECKPOINTS_KEPT]:
            old.unlink()
        return path


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _gather(obj: Any, env: Dist) -> list[Any]:
    if env.world == 1:
        return [obj]
    gathered: list[Any] = [None] * env.world
    dist.all_gather_object(gathered, obj)
    return gathered


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config = resolved(config)
        self.output = Path(config.output)
        device_kind = _device_kind(config.device)
        self.env = _init_distributed(device_kind)
        self.device = _device(device_kind, self.env)
        self.shards = D.ShardSet.open(config.data)
        base = get_preset(config.preset).model
        self.model_config: ModelConfig = with_vocab(
            replace(base, seq_len=config.seq_len), self.shards.vocab_size
        )
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            torch.set_float32_matmul_precision("high")  # TF32 for the few fp32 matmuls outside autocast
        dtype = config.dtype if config.dtype != "auto" else ("bf16" if on_cuda else "fp32")
        if dtype not in ("bf16", "fp32"):
            raise CurateError(f"--dtype {dtype}: choose auto, bf16 or fp32")
        self.autocast_dtype = torch.bfloat16 if dtype == "bf16" else None

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.raw = GPT(self.model_config, config.activation_checkpointing).to(self.device)
        self.fsdp = self.env.world > 1 and config.parallel == "fsdp"
        if self.env.world > 1 and config.parallel not in ("ddp", "fsdp"):
            raise CurateError(f"--parallel {config.parallel}: choose ddp or fsdp")
        if self.fsdp:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            policy = MixedPrecisionPolicy(param_dtype=self.autocast_dtype, reduce_dtype=torch.float32)
            for block in self.raw.blocks:
                fully_shard(block, mp_policy=policy)
            fully_shard(self.raw, mp_policy=policy)
        self.optimizer = _optimizer(self.raw, config, fused=on_cuda)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: lr_factor(step, config.warmup_steps, config.steps, config.min_lr_ratio),
        )
        model: nn.Module = self.raw
        if self.env.world > 1 and not self.fsdp:
            # no buffer sync per forward: the only buffers are the RoPE tables, identical on every rank
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if on_cuda else None, forward_sync_buffers=False
            )
        if config.compile if config.compile is not None else on_cuda:
            model = torch.compile(model)
        self.model = model
        self.step = 0
        self.position = D.Position()
        self.checkpoints = Checkpoints(self.output)
        self.tokens_per_step = config.batch_size * config.seq_len * config.grad_accum * self.env.world
        peak = config.peak_tflops * 1e12 if config.peak_tflops else None
        if peak is None and on_cuda:
            peak = peak_flops(torch.cuda.get_device_name(self.device))
        self.peak = peak

    # ------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Full (unsharded) state on rank 0; every rank's data position and RNG."""
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            model_state, optim_state = get_state_dict(self.raw, self.optimizer, options=options)
        else:
            model_state, optim_state = self.raw.state_dict(), self.optimizer.state_dict()
        return {
            "step": self.step,
            "model": model_state,
            "optimizer": optim_state,
            "scheduler": self.scheduler.state_dict(),
            "data": _gather(self.position.to_dict(), self.env),
            "rng": _gather(_rng_state(), self.env),
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        if len(state["data"]) != self.env.world:
            raise CurateError(
                f"{path}: saved by {len(state['data'])} ranks, resumed by {self.env.world}; "
                "resume with the same number of processes"
            )
        if state["model_config"] != asdict(self.model_config):
            raise CurateError(f"{path}: the model shape differs from --preset/--seq-len; use the saved one")
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

            options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
            set_state_dict(
                self.raw,
                self.optimizer,
                model_state_dict=state["model"],
                optim_state_dict=state["optimizer"],
                options=options,
            )
        else:
            self.raw.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.position = D.Position.from_dict(state["data"][self.env.rank])
        _set_rng_state(state["rng"][self.env.rank])

    def save(self) -> None:
        state = self.state_dict()
        if self.env.main:
            self.checkpoints.save(self.step, state)
        if self.env.world > 1:
            dist.barrier()

    # ------------------------------------------------------------------------------ data

    def _train_stream(self) -> D.TokenStream:
        """This rank's share of the training split (units dealt round-robin after a seeded shuffle)."""
        c = self.config
        return D.TokenStream(
            self.shards,
            c.seq_len,
            eval_fraction=c.eval_fraction,
            rank=self.env.rank,
            world=self.env.world,
            seed=c.seed,
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
            self.config.seq_len,
            split="eval",
            eval_fraction=self.config.eval_fraction,
            shuffle=False,
        )
        held_out = list(
            itertools.islice(
                D.batches(stream, self.config.batch_size, epochs=1), self.config.eval_batches * world
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

    def _sync_context(self, sync: bool) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
        if self.env.world == 1:
            return contextlib.nullcontext()
        if self.fsdp:
            self.raw.set_requires_gradient_sync(sync)
            return contextlib.nullcontext()
        ddp = self.model._orig_mod if hasattr(self.model, "_orig_mod") else self.model
        return contextlib.nullcontext() if sync else ddp.no_sync()

    def train(self) -> dict[str, Any]:
        c = self.config
        latest = self.checkpoints.latest()
        if latest is not None and not c.resume:
            raise CurateError(f"{self.output} already holds checkpoints; pass --resume or another --output")
        resumed = latest is not None
        if resumed:
            self.load_state_dict(torch.load(latest, map_location="cpu", weights_only=False), latest)
            if self.env.main and not c.quiet:
                print(f"resumed from {latest} at step {self.step}", flush=True)
        elif c.resume and self.env.main and not c.quiet:
            print(f"no checkpoint in {self.checkpoints.folder} yet: starting from step 0", flush=True)
        if self.env.main and not c.quiet:
            n_params = self.raw.num_params()
            print(
                f"{c.preset}: {n_params / 1e6:.1f}M parameters on {self.device} x{self.env.world}, "
                f"{self.tokens_per_step:,} tokens/step; data {self.shards.root} "
                f"({self.shards.total_tokens:,} tokens)",
                flush=True,
            )
        writers = self._writers(resumed)
        loader = D.Prefetcher(
            D.batches(self._train_stream(), c.batch_size, self.position), c.prefetch, self._to_tensors
        )
        summary: dict[str, Any] = {"output": str(self.output)}
        interval_start, interval_steps = time.perf_counter(), 0
        try:
            end = min(c.steps, c.stop_at or c.steps)
            while self.step < end:
                loss_sum = torch.zeros((), device=self.device)
                for micro in range(c.grad_accum):
                    item = next(loader)
                    with self._sync_context(micro == c.grad_accum - 1):
                        loss = self._forward(self.model, item["tensors"]) / c.grad_accum
                        loss.backward()
                    loss_sum += loss.detach()
                    self.position = item["position"]
                grad_norm = nn.utils.clip_grad_norm_(self.raw.parameters(), c.grad_clip)
                lr = self.scheduler.get_last_lr()[0]
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                self.step += 1
                interval_steps += 1
                evaluate = c.eval_every > 0 and (self.step % c.eval_every == 0 or self.step == c.steps)
                if self.step % c.log_every == 0 or self.step == end or evaluate:
                    if self.env.world > 1:
                        dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
                    loss_value = loss_sum.item()  # also waits for the device, so the timing below is honest
                    if hasattr(grad_norm, "full_tensor"):
                        grad_norm = grad_norm.full_tensor()
                    elapsed = time.perf_counter() - interval_start
                    tokens_per_s = interval_steps * self.tokens_per_step / elapsed
                    record = {
                        "step": self.step,
                        "loss": loss_value,
                        "lr": lr,
                        "grad_norm": float(grad_norm),
                        "tokens_per_s": tokens_per_s,
                        "tokens": self.step * self.tokens_per_step,
                        "mfu": mfu(tokens_per_s / self.env.world, self.model_config, self.peak),
                        "position": self.position.to_dict(),
                    }
                    if evaluate:
                        eval_loss = self.evaluate()
                        if eval_loss is not None:
                            record.update(eval_loss=eval_loss, eval_ppl=math.exp(min(eval_loss, 50.0)))
                            summary.update(eval_loss=eval_loss, eval_ppl=record["eval_ppl"])
                    self._log(record, writers)
                    summary.update(loss=loss_value, step=self.step)
                    interval_start, interval_steps = time.perf_counter(), 0
                if c.checkpoint_every and self.step % c.checkpoint_every == 0 and self.step < end:
                    self.save()
                    interval_start = time.perf_counter()  # saving is not training throughput
            self.save()
        finally:
            loader.close()
            for writer in writers.values():
                writer.close()
        summary["checkpoint"] = str(self.checkpoints.latest()) if self.env.main else None
        return summary


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; returns the last logged loss, eval loss/perplexity and checkpoint path."""
    trainer = Trainer(config)
    try:
        return trainer.train()
    finally:
        if trainer.env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
