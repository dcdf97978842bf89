#!/usr/bin/env bash
# Launch `curate train` on every GPU of this node (and, with NNODES > 1, across nodes).
# torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; the trainer picks DDP or FSDP2 (--parallel) from them.
#   deploy/train/torchrun.sh --data demo-out --preset gpt2-small --steps 5000 --output runs/gpt2s
# Multi-node: NNODES=4 NODE_RANK=<0..3> MASTER_ADDR=<node 0's address> deploy/train/torchrun.sh ...
set -euo pipefail
NPROC="${NPROC:-$(nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU' || true)}"
[ "${NPROC:-0}" -gt 0 ] || { echo "no GPU found (nvidia-smi); set NPROC" >&2; exit 1; }
NNODES="${NNODES:-1}"
if [ "$NNODES" = 1 ]; then
  exec torchrun --standalone --nproc-per-node "$NPROC" -m curate train --device cuda --resume "$@"
fi
exec torchrun --nnodes "$NNODES" --node-rank "${NODE_RANK:?set NODE_RANK}" --nproc-per-node "$NPROC" \
  --rdzv-backend c10d --rdzv-endpoint "${MASTER_ADDR:?set MASTER_ADDR}:${MASTER_PORT:-29500}" \
  --rdzv-id "${RDZV_ID:-curate-train}" -m curate train --device cuda --resume "$@"
