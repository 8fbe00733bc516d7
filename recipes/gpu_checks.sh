#!/usr/bin/bash
# The one script to run on a GPU machine (1x H100/H200, bf16): what LET costs against plain torchtitan at 1.4B.
# Checks, in priority order (a check that would not finish inside BUDGET_S seconds is skipped, with a message):
#   1. baseline vs LET: 1.4B student, random SmolLM-135M-shaped teacher, compile, batch 4 x 2048, 2 repeats
#   2. the same with float8 linears (needs torchao; skipped with a message where it is missing)
#   3. the same with full, then with selective (per-op) activation checkpointing
# Every check measures LET while aligning and after stop_step (recipes/benchmark.py). One table is printed at the end;
# with $OUT set, docs-ready Markdown (gpu_checks.md) and each check's benchmark.md/json and logs are written there.
#
#   bash recipes/gpu_checks.sh                          # on the GPU machine, about 8 minutes
#   OUT=/path/to/reports bash recipes/gpu_checks.sh
#   DRY_RUN=1 bash recipes/gpu_checks.sh                # the same sequence on CPU: debug configs, tiny random
#                                                       # teacher, compile and float8 off; about 70 s on 2 cores
# Knobs: BUDGET_S (default 450 s for the checks), WORK (scratch folder for teachers and runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

WORK=${WORK:-$(mktemp -d /tmp/let_gpu_checks.XXXXXX)}
REPORTS=${OUT:-$WORK/reports}
BUDGET_S=${BUDGET_S:-450}
mkdir -p "$WORK" "$REPORTS"

if [ -n "${DRY_RUN:-}" ]; then
  MODE="DRY_RUN on $(nproc) CPU cores: debug configs, tiny teacher, no compile, no float8"
  BASELINE=train_configs/baseline_debug.toml
  LET=train_configs/let_debug.toml
  SHAPE=debug
  PREFIX=debug
  FIRST_LABEL=debug-eager
  SIZE=(--training.local_batch_size 2 --training.seq_len 64)
  FEATURES=()  # inductor on 2 CPU cores takes minutes and measures nothing about a GPU
  FIRST=(--steps 6 --stop-step 3 --warmup 1 --repeats 1)
  FIRST_RUNS=2
  LATER=(--steps 6 --stop-step 3 --warmup 1 --repeats 1)
  # one thread per process: predictable on shared CI boxes, where spinning OpenMP threads of two jobs collide
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
  MODE="GPU: 1.4B student, bf16, compile"
  BASELINE=train_configs/baseline_1.4b.toml
  LET=train_configs/let_1.4b.toml
  SHAPE=smollm-135m
  PREFIX=1.4B
  FIRST_LABEL=1.4B-compile
  SIZE=(--training.local_batch_size 4 --training.seq_len 2048)
  FEATURES=(--compile.enable)
  # the first steps compile (and recompile); 5 warm-up steps keep them out of every number
  FIRST=(--steps 30 --stop-step 15 --warmup 5 --repeats 2)
  FIRST_RUNS=4
  LATER=(--steps 20 --stop-step 10 --warmup 5 --repeats 1)
  python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: use DRY_RUN=1 on a CPU machine'"
fi
for config in "$BASELINE" "$LET"; do
  [ -f "$config" ] || { echo "[gpu_checks] $config is missing"; exit 1; }
done
echo "[gpu_checks] $MODE; budget ${BUDGET_S}s; scratch $WORK; reports $REPORTS"

# A random-weight teacher of the real shape (cost does not depend on the weights). Its tokenizer is the project's
# 4096-id one: every id it emits indexes the teacher's 49152-row embedding, which is all the trainer requires.
TEACHER=$WORK/teacher_$SHAPE
[ -f "$TEACHER/model.safetensors" ] ||
  python -m recipes.benchmark --make-teacher "$TEACHER" --teacher-shape "$SHAPE" --tokenizer assets/tokenizer
# The 1.4B configs are written for 8+ GPUs and a 1M-token global batch on The Pile, with selective AC: here one
# device, one local batch per step (no gradient accumulation), the bundled corpus, and AC only where a check asks.
COMMON=(--let.teacher_path "$TEACHER" --model.hf_assets_path "$TEACHER" --training.dataset sample_corpus
        --training.global_batch_size=-1 --activation_checkpoint.mode none "${SIZE[@]}" "${FEATURES[@]}")

DONE=()
NOTES=()
PER_RUN_S=0

# check LABEL RUNS BENCHMARK_ARGS... -- TRAIN_ARGS...   (RUNS = 2 x repeats, for the time-budget estimate)
check() {
  local label=$1 runs=$2
  shift 2
  if [ "$PER_RUN_S" -gt 0 ] && [ $((SECONDS + runs * PER_RUN_S)) -gt "$BUDGET_S" ]; then
    NOTES+=("skipped $label: $runs runs of about ${PER_RUN_S}s would end past BUDGET_S=${BUDGET_S}s (at ${SECONDS}s)")
    echo "[gpu_checks] ${NOTES[-1]}"
    return 0
  fi
  echo "[gpu_checks] $label (${SECONDS}s elapsed)"
  local start=$SECONDS
  local status=0
  python -m recipes.benchmark --baseline "$BASELINE" --let "$LET" --label "$label" --out "$WORK/$label" "$@" ||
    status=$?
  local per_run=$(( (SECONDS - start) / runs ))
  [ "$per_run" -gt "$PER_RUN_S" ] && PER_RUN_S=$per_run
  mkdir -p "$REPORTS/$label"
  cp "$WORK/$label"/benchmark.* "$REPORTS/$label/" 2>/dev/null || true
  for log in "$WORK/$label"/runs/*/train.log; do
    [ -f "$log" ] && cp "$log" "$REPORTS/$label/$(basename "$(dirname "$log")").log"
  done
  if [ "$status" -eq 0 ]; then
    DONE+=("$WORK/$label")
  else
    NOTES+=("FAILED $label (exit $status): see $REPORTS/$label/*.log")
    echo "[gpu_checks] ${NOTES[-1]}"
  fi
}

# 1. the cost of LET at the paper's size (the setup of the H200 numbers in LET_METHOD.md: compile, no AC)
check "$FIRST_LABEL" "$FIRST_RUNS" "${FIRST[@]}" -- "${COMMON[@]}"

# 2. float8 linears (student only: the teacher stays bf16)
if [ -n "${DRY_RUN:-}" ]; then
  NOTES+=("skipped $PREFIX-float8: GPU-only (DRY_RUN)")
elif ! python -c "import torchao" 2>/dev/null; then
  NOTES+=("skipped $PREFIX-float8: torchao is not installed (pip install 'let-titan[float8]')")
else
  check "$PREFIX-compile-float8" 2 "${LATER[@]}" --no-teacher-timing -- "${COMMON[@]}" \
    --model.converters quantize.linear.float8
fi

# 3. activation checkpointing: recomputation makes the student step longer, so the teacher's share shrinks
check "$PREFIX-ac-full" 2 "${LATER[@]}" --no-teacher-timing -- "${COMMON[@]}" --activation_checkpoint.mode full
check "$PREFIX-ac-selective-op" 2 "${LATER[@]}" --no-teacher-timing -- "${COMMON[@]}" \
  --activation_checkpoint.mode selective --activation_checkpoint.selective_ac_option op

SUMMARY=$REPORTS/gpu_checks.md
{
  echo "## GPU checks: LET vs baseline ($MODE)"
  echo
  echo "Command: \`${DRY_RUN:+DRY_RUN=1 }bash recipes/gpu_checks.sh\`; ${SECONDS}s in all. Tokens/s per device, mean"
  echo "(min..max) over repeats of each run's median step; ratios per alternating baseline/LET pair. Details per check"
  echo "in its benchmark.md."
  echo
  if [ ${#DONE[@]} -gt 0 ]; then
    python -m recipes.benchmark --summarize "${DONE[@]}"
  else
    echo "(no check finished)"
  fi
  for note in "${NOTES[@]}"; do echo "- $note"; done
} > "$SUMMARY"
echo
cat "$SUMMARY"
echo "[gpu_checks] wrote $SUMMARY"
