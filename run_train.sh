#!/usr/bin/bash
# Launch LET (or baseline) training with torchrun (torch.distributed.run), in torchtitan's style.
#   ./run_train.sh                                           # the embedded LET debug run
#   NGPU=8 ./run_train.sh --job.config_file train_configs/let_1.4b.toml
#   CONFIG_FILE=train_configs/baseline_debug.toml ./run_train.sh --training.steps 10
#   TRAIN_FILE=my_pkg.train ./run_train.sh    # another entry module (default recipes.train)
#   PYTHON=.venv/bin/python ./run_train.sh     # the interpreter that launches (default: python on PATH)
#   COMM_MODE=fake_backend NGPU=32 ./run_train.sh --job.config_file train_configs/let_7b.toml   # dry run, 1 process
# A --job.config_file among the arguments wins over CONFIG_FILE (torchtitan takes the first occurrence).
set -euo pipefail
cd "$(dirname "$0")"

CONFIG_FILE=${CONFIG_FILE:-"./train_configs/let_debug.toml"}
for arg in "$@"; do
  case "$arg" in
    --job.config_file|--job.config_file=*) CONFIG_FILE="" ;;
  esac
done

# One interpreter counts the GPUs and launches: `python -m torch.distributed.run` is torchrun, but trains with that
# interpreter's torch, not with whichever torchrun comes first on PATH.
PYTHON=${PYTHON:-python}
if [ -z "${NGPU:-}" ]; then
  NGPU=$("$PYTHON" -c "import torch; print(torch.accelerator.device_count() if torch.accelerator.is_available() else 1)")
fi
LOG_RANK=${LOG_RANK:-0}
TRAIN_FILE=${TRAIN_FILE:-"recipes.train"}
OVERRIDES=()
[ -n "$CONFIG_FILE" ] && OVERRIDES=(--job.config_file "$CONFIG_FILE")

export PYTORCH_ALLOC_CONF=${PYTORCH_ALLOC_CONF:-"expandable_segments:True"}
export TORCHFT_LIGHTHOUSE=${TORCHFT_LIGHTHOUSE:-"http://localhost:29510"}

# A dry run (torchtitan's COMM_MODE: fake_backend or local_tensor): ONE process, without torchrun, stands for rank 0
# of NGPU ranks; the dry run's own defaults (a few steps, ...) replace torchtitan's forced --training.steps=1
# (let_components/dry_run.py), so flags still set them.
case "${COMM_MODE:-}" in
  "") ;;
  fake_backend|local_tensor)
    NGPU=$NGPU LOCAL_RANK=0 exec "$PYTHON" -m "$TRAIN_FILE" "${OVERRIDES[@]}" "$@" --comm.mode="$COMM_MODE" ;;
  *) echo "run_train.sh: COMM_MODE=$COMM_MODE: fake_backend or local_tensor (a dry run); unset to train" >&2; exit 2 ;;
esac

exec "$PYTHON" -m torch.distributed.run --nproc_per_node="$NGPU" --rdzv_backend c10d --rdzv_endpoint="localhost:0" \
  --local-ranks-filter "$LOG_RANK" --role rank --tee 3 \
  -m "$TRAIN_FILE" "${OVERRIDES[@]}" "$@"
