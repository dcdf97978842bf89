"""Benchmark: the trainer's tokens/s and MFU on this device, and the data loader's tokens/s alone.

  python bench/train.py [--data DIR|NAME@REF] [--preset P] [--device cpu|cuda] [--steps N]
                        [--batch-size B] [--grad-accum K] [--loader-tokens N] [--json FILE]

Defaults: on CUDA, GPT-2 small in bf16 with torch.compile and fused AdamW (the goal: >= 45% MFU on one
H100); on CPU, the tiny preset in fp32. Without --data, the real CC documents in ../shared/data/jsonl are
tokenized with GPT-2's BPE into sample shards (the layout `curate run` writes), repeated to a few 100k tokens.

Model throughput is the training loop itself (`curate.train.trainer`, data loading included) over the
log intervals after the first (which holds compilation and warm-up). MFU = tokens/s x FLOPs/token
(PaLM: 6N + 12*L*H*Q*T, see curate/train/flops.py) / the device's dense bf16 peak (989 TFLOP/s for an
H100 SXM, never the 2:4 sparse figure). The loader is timed alone, wall clock, exactly as training uses it
(seeded shuffle, packing, background prefetch, tensors, pinned memory on CUDA); it must deliver >= 10x
what the model consumes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# keep bench/ off the import path: a script here must never shadow a module of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))
SHARED_JSONL = REPO.parent / "shared" / "data" / "jsonl"

import torch  # noqa: E402

from curate.train import data as D  # noqa: E402
from curate.train.flops import flops_per_token, peak_flops  # noqa: E402
from curate.train.sample import write_sample_shards  # noqa: E402
from curate.train.trainer import TrainConfig, Trainer  # noqa: E402


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def sample_data(folder: Path) -> str:
    jsonl = sorted(SHARED_JSONL.glob("*.jsonl.gz"))
    if not jsonl:
        sys.exit(f"no --data given and no sample text in {SHARED_JSONL}")
    return str(write_sample_shards(jsonl, folder, n_shards=4, row_group_bytes=256 * 1024, repeat=20))


def loader_tokens_per_s(trainer: Trainer, tokens: int) -> float:
    """Wall-clock tokens/s of the training loader on its own, tensors handed over as training gets them."""
    stream = trainer._train_stream()
    loader = D.Prefetcher(
        D.batches(stream, trainer.config.batch_size), trainer.config.prefetch, trainer._to_tensors
    )
    seen, start = 0, time.perf_counter()
    try:
        while seen < tokens:
            item = next(loader)
            seen += item["tensors"]["idx"].numel()
    finally:
        loader.close()
    return seen / (time.perf_counter() - start)


def model_run(config: TrainConfig) -> tuple[Trainer, dict]:
    trainer = Trainer(config)
    trainer.train()
    log = [json.loads(line) for line in (Path(config.output) / "train.jsonl").read_text().splitlines()]
    steady = log[1:] or log  # the first interval holds compilation and warm-up
    tokens_per_s = sum(r["tokens_per_s"] for r in steady) / len(steady)
    return trainer, {"tokens_per_s": tokens_per_s, "last_loss": log[-1]["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--grad-accum", type=int)
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--loader-tokens", type=int, default=2_000_000)
    parser.add_argument("--loader-only", action="store_true", help="time only the loader (any device)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = args.preset or ("gpt2-small" if cuda else "tiny")
    steps = args.steps or (60 if cuda else 30)
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or sample_data(Path(scratch) / "shards")
        config = TrainConfig(
            data=data,
            preset=preset,
            steps=steps,
            output=str(Path(scratch) / "run"),
            device=args.device,
            batch_size=args.batch_size,
            grad_accum=args.grad_accum,
            seq_len=args.seq_len,
            compile=args.compile,
            activation_checkpointing=args.activation_checkpointing,
            eval_every=0,
            log_every=max(1, steps // 6),
            quiet=True,
        )
        if args.loader_only:
            trainer = Trainer(config)
            loader = loader_tokens_per_s(trainer, args.loader_tokens)
            print(
                f"{preset} batches ({trainer.config.batch_size} x {trainer.config.seq_len}): loader alone "
                f"{loader:,.0f} tokens/s on {cpu_name()} ({os.cpu_count()} CPUs)"
            )
            return
        trainer, model = model_run(config)
        loader = loader_tokens_per_s(trainer, args.loader_tokens)
    fpt = flops_per_token(trainer.model_config)
    device_name = torch.cuda.get_device_name() if cuda else cpu_name()
    peak = peak_flops(device_name) if cuda else None
    result = {
        "device": device_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "preset": preset,
        "params": trainer.raw.num_params(),
        "dtype": "bf16" if trainer.autocast_dtype else "fp32",
        "compile": hasattr(trainer.model, "_orig_mod"),
        "batch_tokens_per_step": trainer.tokens_per_step,
        "steps": steps,
        "flops_per_token": fpt,
        "model_tokens_per_s": model["tokens_per_s"],
        "achieved_tflops": model["tokens_per_s"] * fpt / 1e12,
        "peak_bf16_tflops": peak / 1e12 if peak else None,
        "mfu": model["tokens_per_s"] * fpt / peak if peak else None,
        "loader_tokens_per_s": loader,
        "loader_over_model": loader / model["tokens_per_s"],
        "last_loss": model["last_loss"],
    }
    print(
        f"{preset} on {device_name} ({result['dtype']}, compile={result['compile']}): "
        f"{result['model_tokens_per_s']:,.0f} tokens/s, {result['achieved_tflops']:.3f} TFLOP/s"
        + (
            f", MFU {100 * result['mfu']:.1f}% of {result['peak_bf16_tflops']:.0f}"
            if peak
            else ", MFU n/a (no peak)"
        )
    )
    print(
        f"loader alone: {loader:,.0f} tokens/s = {result['loader_over_model']:.0f}x what the model consumes"
    )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
