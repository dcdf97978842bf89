"""`curate train --data DIR|NAME@REF --preset tiny [--steps N] [--device cpu|cuda] [--output DIR] [--resume]`.

torch is imported only when the command runs, so `curate --help` works without the `train` extra.
"""

from __future__ import annotations

import argparse
from typing import Any

from curate.core.errors import CurateError
from curate.object_store import add_storage_arguments, configure, storage_from_args

PRESET_NAMES = [
    "tiny",
    "cpu-proxy",
    "small",
    "gpt2-small",
    "gpt2-medium",
    "gpt2-large",
]  # curate.train.presets.PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="Pretrain a GPT on token shards; logs loss, eval perplexity, tokens/s, MFU.",
        description="Multi-GPU: torchrun --nproc-per-node N -m curate train ... (deploy/train/README.md).",
    )
    add = train.add_argument
    add("--data", required=True, metavar="DIR|NAME@REF", help="A run output (DIR, gs://, s3://) or name@ref.")
    add("--preset", default="tiny", choices=PRESET_NAMES, help="Model size and optimiser defaults.")
    add("--steps", type=int, default=200, help="Optimizer steps in all (default 200).")
    add("--stop-at", type=int, metavar="STEP", help="Stop at STEP (checkpointed) on the --steps schedule.")
    add("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add(
        "--output",
        default="train-out",
        metavar="DIR",
        help="Checkpoints and train.jsonl (default train-out).",
    )
    add("--resume", action="store_true", help="Continue from DIR's latest checkpoint (start fresh if none).")
    add("--batch-size", type=int, help="Sequences per micro-batch per process (preset's by default).")
    add("--grad-accum", type=int, help="Micro-batches per optimizer step.")
    add("--seq-len", type=int, help="Tokens per sequence (the preset's by default).")
    add("--lr", type=float, help="Peak learning rate.")
    add("--warmup-steps", type=int)
    add("--weight-decay", type=float)
    add("--seed", type=int, default=0)
    add("--eval-fraction", type=float, default=0.01, help="Documents held out for eval (by id hash).")
    add("--eval-every", type=int, default=100, help="Steps between held-out evals (0: never).")
    add("--eval-batches", type=int, default=20)
    add(
        "--eval-tasks",
        nargs="+",
        default=[],
        metavar="TASK",
        help="Bundled tasks scored every --eval-every steps (bits-per-byte, accuracy): 'reference' (clean "
        "text, the same for every dataset, so runs on different data compare), hellaswag, arc_easy, ... all.",
    )
    add("--eval-limit", type=int, default=200, help="Items per --eval-tasks task (default 200).")
    add("--log-every", type=int, default=10)
    add("--checkpoint-every", type=int, default=0, help="Steps between checkpoints (0: only at the end).")
    add("--dtype", default="auto", choices=["auto", "bf16", "fp32"], help="auto: bf16 on cuda, fp32 on cpu.")
    add(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile (default: on cuda).",
    )
    add("--activation-checkpointing", action="store_true", help="Recompute activations in backward.")
    add("--doc-mask", action="store_true", help="Mask attention across packed documents.")
    add("--parallel", default="ddp", choices=["ddp", "fsdp"], help="With torchrun and more than one process.")
    add("--threads", type=int, help="CPU threads for torch (default: torch's choice).")
    add("--tensorboard", action="store_true", help="Also log to DIR/tensorboard.")
    add("--peak-tflops", type=float, help="Dense bf16 peak per device for MFU, if not detected.")
    add("--quiet", action="store_true")
    add_storage_arguments(train)
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        raise CurateError("curate train needs PyTorch: pip install -e '.[train]'") from None
    from curate.train.trainer import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    configure(storage_from_args(args))  # --data may be gs:// or s3://
    skip = ("func", "command", "threads", "s3_endpoint_url", "s3_region")
    options = {key: value for key, value in vars(args).items() if key not in skip}
    summary = train(TrainConfig(**options))
    if summary.get("checkpoint") and not args.quiet:
        print(summary_line(summary))
    return 0


def summary_line(summary: dict[str, Any]) -> str:
    """One readable line: where training ended, what it scored, how fast, and where the model is."""
    parts = [f"trained {summary.get('step', 0)} steps: loss {summary.get('loss') or float('nan'):.4f}"]
    if summary.get("eval_loss") is not None:
        parts.append(f"held-out loss {summary['eval_loss']:.4f} (perplexity {summary['eval_ppl']:.1f})")
    elif summary.get("eval_skipped"):
        parts.append("held-out eval skipped (see above)")
    for task, scores in (summary.get("eval_tasks") or {}).items():
        acc = f", acc {scores['acc']:.3f}" if "acc" in scores else ""
        parts.append(f"{task} {scores['bpb']:.3f} bits/byte{acc}")
    if summary.get("tokens_per_s"):
        parts.append(f"{summary['tokens_per_s']:,.0f} tokens/s")
    parts.append(f"checkpoint {summary['checkpoint']}")
    return "; ".join(parts)
