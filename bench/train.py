"""Benchmark: the trainer's tokens/s and MFU on this device, and the data loader's tokens/s alone.

  python bench/train.py [--data DIR|NAME@REF] [--preset P] [--device cpu|cuda] [--steps N]
                        [--batch-size B] [--grad-accum K] [--loader-tokens N] [--loader-only]
                        [--json bench/results/train.json]
  python bench/train.py --sweep [--presets P...] [--vocabs V...] [--json bench/results/train_presets.json]

Defaults: on CUDA, GPT-2 small in bf16 with torch.compile and fused AdamW (the goal: >= 45% MFU on one
H100); on CPU, the tiny preset in fp32. Without --data, the real CC documents in ../shared/data/jsonl are
tokenized with GPT-2's BPE into sample shards (the layout `curate run` writes), repeated to a few 100k tokens.

Model throughput is the training loop itself (`curate.train.trainer`, data loading included) over the
log intervals after the first (which holds compilation and warm-up). MFU = tokens/s x FLOPs/token
(PaLM: 6N + 12*L*H*Q*T, see curate/train/flops.py) / the device's dense bf16 peak (989 TFLOP/s for an
H100 SXM, never the 2:4 sparse figure). The loader is timed alone, wall clock, exactly as training uses it
(seeded shuffle, packing, background prefetch, tensors, pinned memory on CUDA); it must deliver >= 10x
what the model consumes. It is timed at the run's batch shape and at GPT-2 small's, and compared with
what GPT-2 small consumes at the 45% MFU goal on one H100 (tokens/s = 0.45 x 989 TFLOP/s / FLOPs per
token), so a CPU-only machine still checks the loader against the GPU it would feed.

--sweep times each preset at each vocabulary size (the sample text tokenized with GPT-2's 50,257-token
BPE, or a byte-level BPE of that size trained on it): a tiny model's cost is mostly its embedding and
output layer, so the vocabulary decides how many tokens/s a CPU proxy trains at (`curate ablate --preset
cpu` uses cpu-proxy with a 4,096-token BPE). Each row gives wall and CPU seconds of the timed steps (this
process, all threads) and the machine's load average, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# keep bench/ off the import path: a script here must never shadow a module of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))
SHARED_JSONL = REPO.parent / "shared" / "data" / "jsonl"

import torch  # noqa: E402

from bench.results_file import write_results  # noqa: E402
from curate.train import data as D  # noqa: E402
from curate.train.flops import flops_per_token, peak_flops  # noqa: E402
from curate.train.presets import get_preset, with_vocab  # noqa: E402
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
    started, cpu_started, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    trainer.train()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    log = [json.loads(line) for line in (Path(config.output) / "train.jsonl").read_text().splitlines()]
    steady = log[1:] or log  # the first interval holds compilation and warm-up
    tokens_per_s = sum(r["tokens_per_s"] for r in steady) / len(steady)
    return trainer, {
        "tokens_per_s": tokens_per_s,
        "last_loss": log[-1]["loss"],
        "wall_seconds": wall,  # the whole run, warm-up included
        "cpu_seconds": cpu,
        "load_average_1min": [load, os.getloadavg()[0]],  # before, after
    }


SWEEP_STEPS = {"tiny": 60, "cpu-proxy": 60, "small": 4}  # enough log intervals past warm-up
GPT2_VOCAB = 50257


def sweep(args: argparse.Namespace) -> None:
    """Tokens/s of each preset at each vocabulary size, on CPU or GPU, as one table."""
    jsonl = sorted(SHARED_JSONL.glob("*.jsonl.gz"))
    if not jsonl:
        sys.exit(f"no sample text in {SHARED_JSONL}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for vocab in args.vocabs:
            shards = Path(scratch) / f"shards-{vocab}"
            trained = None if vocab == GPT2_VOCAB else vocab  # GPT-2's own BPE, or one trained at that size
            write_sample_shards(jsonl, shards, 4, 256 * 1024, repeat=20, vocab_size=trained)
            for preset in args.presets:
                steps = args.steps or SWEEP_STEPS.get(preset, 6)
                config = TrainConfig(
                    data=str(shards),
                    preset=preset,
                    steps=steps,
                    output=str(Path(scratch) / f"run-{vocab}-{preset}"),
                    device=args.device,
                    batch_size=args.batch_size,
                    eval_every=0,
                    eval_fraction=0.0,
                    log_every=max(1, steps // 6),
                    quiet=True,
                )
                trainer, model = model_run(config)
                row = {
                    "preset": preset,
                    "vocab_size": trainer.model_config.vocab_size,
                    "tokenizer": "gpt2" if trained is None else f"byte-level BPE {vocab}",
                    "params": trainer.raw.num_params(),
                    "batch_tokens_per_step": trainer.tokens_per_step,
                    "steps": steps,
                    "flops_per_token": flops_per_token(trainer.model_config),
                    **model,
                    # all steps (warm-up included) per CPU-second of this process: on a shared machine this
                    # moves far less with the load than tokens/s does
                    "tokens_per_cpu_second": steps * trainer.tokens_per_step / model["cpu_seconds"],
                }
                rows.append(row)
                print(
                    f"{preset:<10} vocab {row['vocab_size']:>6,}  {row['params'] / 1e6:6.2f}M params  "
                    f"{row['tokens_per_s']:>9,.0f} tokens/s  {row['tokens_per_cpu_second']:>8,.0f} per CPU-s "
                    f"{steps} steps in "
                    f"{row['wall_seconds']:.0f} s wall, {row['cpu_seconds']:.0f} CPU-s, "
                    f"load {row['load_average_1min'][0]:.1f}->{row['load_average_1min'][1]:.1f}",
                    flush=True,
                )
                del trainer
    device = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    note = (
        f"Training tokens/s per preset and vocabulary size on {device} ({torch.get_num_threads()} torch "
        "threads, fp32 on CPU), steady state after the first log interval; wall/CPU seconds of the whole "
        "run; load average before and after (the machine is shared)."
    )
    write_results(args.json, "train_presets", note, rows)


GOAL_MFU = 0.45  # the goal for GPT-2 small on one H100
GOAL_DEVICE = "H100"
BENCH = Path(__file__).resolve().parent


def goal_consumption() -> float:
    """Tokens/s GPT-2 small trains at with the goal MFU on one H100 SXM: what the loader must outrun."""
    config = with_vocab(get_preset("gpt2-small").model, 50257)
    return GOAL_MFU * peak_flops(GOAL_DEVICE) / flops_per_token(config)


def loader_config(config: TrainConfig, preset: str, output: str) -> TrainConfig:
    """``config`` with ``preset``'s batch shape (sequences x length), for timing the loader at it."""
    return replace(config, preset=preset, batch_size=None, seq_len=None, grad_accum=None, output=output)


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
    parser.add_argument("--loader-tokens", type=int, default=20_000_000, help="tokens per loader timing")
    parser.add_argument("--loader-only", action="store_true", help="time only the loader (any device)")
    parser.add_argument("--sweep", action="store_true", help="tokens/s per preset and vocabulary size")
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu-proxy", "small"])
    parser.add_argument("--vocabs", nargs="+", type=int, default=[4096, GPT2_VOCAB])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sweep:
        args.json = args.json or BENCH / "results" / "train_presets.json"
        sweep(args)
        return
    args.json = args.json or BENCH / "results" / "train.json"
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
        # The loader at GPT-2 small's batch shape: the consumer the >= 10x rule is about on a GPU.
        goal_loader_trainer = Trainer(loader_config(config, "gpt2-small", str(Path(scratch) / "loader")))
        goal_loader = loader_tokens_per_s(goal_loader_trainer, args.loader_tokens)
        goal_shape = f"{goal_loader_trainer.config.batch_size} x {goal_loader_trainer.config.seq_len}"
        del goal_loader_trainer
        trainer, model = (Trainer(config), None) if args.loader_only else model_run(config)
        loader = loader_tokens_per_s(trainer, args.loader_tokens)
    need = goal_consumption()
    fpt = flops_per_token(trainer.model_config)
    device_name = torch.cuda.get_device_name() if cuda else cpu_name()
    peak = peak_flops(device_name) if cuda else None
    result = {
        "device": device_name,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "preset": preset,
        "params": trainer.raw.num_params(),
        "vocab_size": trainer.model_config.vocab_size,
        "dtype": "bf16" if trainer.autocast_dtype else "fp32",
        "compile": hasattr(trainer.model, "_orig_mod"),
        "batch_tokens_per_step": trainer.tokens_per_step,
        "steps": steps,
        "flops_per_token": fpt,
        "model_tokens_per_s": model["tokens_per_s"] if model else None,
        "achieved_tflops": model["tokens_per_s"] * fpt / 1e12 if model else None,
        "peak_bf16_tflops": peak / 1e12 if peak else None,
        "mfu": model["tokens_per_s"] * fpt / peak if model and peak else None,
        "last_loss": model["last_loss"] if model else None,
        "loader_tokens_per_s": loader,
        "loader_over_model": loader / model["tokens_per_s"] if model else None,
        "loader_gpt2_small_shape_tokens_per_s": goal_loader,
        "gpt2_small_tokens_per_s_at_goal_mfu_on_h100": need,
        "loader_over_goal_consumption": goal_loader / need,
    }
    rows = [("device", f"{device_name} ({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads)")]
    if model:
        mfu_text = f"{100 * result['mfu']:.1f}% of {peak / 1e12:.0f} TFLOP/s" if peak else "n/a (no GPU peak)"
        rows += [
            (f"{preset} training ({result['dtype']}, compile={result['compile']})", ""),
            ("  model tokens/s", f"{model['tokens_per_s']:,.0f}"),
            ("  achieved TFLOP/s", f"{result['achieved_tflops']:.3f} ({fpt / 1e9:.3f} GFLOP/token)"),
            ("  MFU", mfu_text),
            (
                "  loader alone, same batches",
                f"{loader:,.0f} tokens/s = {result['loader_over_model']:,.0f}x model",
            ),
        ]
    else:
        rows.append((f"loader alone, {preset} batches", f"{loader:,.0f} tokens/s"))
    rows += [
        (f"loader alone, GPT-2 small batches ({goal_shape})", f"{goal_loader:,.0f} tokens/s"),
        (
            f"  GPT-2 small at {GOAL_MFU:.0%} MFU on an H100 needs",
            f"{need:,.0f} tokens/s: loader = {goal_loader / need:.1f}x (>= 10x wanted)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
