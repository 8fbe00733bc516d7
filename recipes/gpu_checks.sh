#!/usr/bin/bash
# The one script to run on a GPU machine (1x H100/H200, bf16): is LET correct there, and what does it cost at 1.4B?
# Checks, in priority order (a check that would not finish inside BUDGET_S seconds is skipped, with a message):
#   correct   the default debug run on the GPU: finite losses, [LET] lines, the teacher released at stop_step with
#             its memory returned (reserved memory before/after in the log), bf16 teacher
#   compile   1.4B student, random SmolLM-135M-shaped teacher, compile, batch 4 x 2048: baseline vs LET while
#             aligning and after stop_step, REPEATS alternating pairs (python -m recipes.benchmark)
#   levers    the same LET run with the teacher under CUDA graphs (let.teacher_compile_mode=reduce-overhead); the
#             largest loss difference over 20 steps against check 2's LET run, and between check 2's two repeats
#   float8    compile + float8 linears (torchao; the LET projection and the output layer excluded)
# One table is printed at the end; with $OUT set, gpu_checks.md plus each check's benchmark.md/json and logs go there.
#
#   bash recipes/gpu_checks.sh                                   # everything, about 8 minutes on one H100
#   CHECKS="correct compile" bash recipes/gpu_checks.sh          # a subset; WORK=/tmp/x keeps teacher and inductor
#   CHECKS="levers float8" bash recipes/gpu_checks.sh            #   cache between two calls on one machine
#   DRY_RUN=1 bash recipes/gpu_checks.sh                         # the same sequence on CPU: debug configs, tiny
#                                                                # random teacher, no compile, no float8
# Knobs: BUDGET_S (default 450 s), REPEATS (default 3), WORK (scratch folder: teachers, runs, inductor cache).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

WORK=${WORK:-$(mktemp -d /tmp/let_gpu_checks.XXXXXX)}
REPORTS=${OUT:-$WORK/reports}
BUDGET_S=${BUDGET_S:-450}
REPEATS=${REPEATS:-3}
CHECKS=${CHECKS:-"correct compile levers float8"}
mkdir -p "$WORK" "$REPORTS"
# one inductor/FX cache for every run of this script (and of a later call with the same WORK)
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$WORK/inductor_cache}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

if [ -n "${DRY_RUN:-}" ]; then
  MODE="DRY_RUN on $(nproc) CPU cores: debug configs, tiny teacher, no compile, no float8"
  BASELINE=train_configs/baseline_debug.toml
  LET=train_configs/let_debug.toml
  SHAPE=debug
  PREFIX=debug
  SIZE=(--training.local_batch_size 2 --training.seq_len 64)
  FEATURES=()  # inductor on 2 CPU cores takes minutes and measures nothing about a GPU
  STEPS=(--steps 6 --stop-step 3 --warmup 1)
  CORRECT=(--training.steps 12 --let.stop_step 4 --validation.freq 6 --validation.steps 2)
  # one thread per process: predictable on shared CI boxes, where spinning OpenMP threads of two jobs collide
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
  MODE="GPU: 1.4B student, bf16, compile"
  BASELINE=train_configs/baseline_1.4b.toml
  LET=train_configs/let_1.4b.toml
  SHAPE=smollm-135m
  PREFIX=1.4B
  SIZE=(--training.local_batch_size 4 --training.seq_len 2048)
  FEATURES=(--compile.enable)
  # the first steps compile (and recompile); 5 warm-up steps keep them out of every number
  STEPS=(--steps 30 --stop-step 15 --warmup 5)
  CORRECT=(--training.steps 60 --let.stop_step 20)
  python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: use DRY_RUN=1 on a CPU machine'"
fi
for config in "$BASELINE" "$LET"; do
  [ -f "$config" ] || { echo "[gpu_checks] $config is missing"; exit 1; }
done
echo "[gpu_checks] $MODE; checks: $CHECKS; budget ${BUDGET_S}s; scratch $WORK; reports $REPORTS"
wants() { [[ " $CHECKS " == *" $1 "* ]]; }

# A random-weight teacher of the real shape (cost does not depend on the weights). Its tokenizer is the project's
# 4096-id one: every id it emits indexes the teacher's 49152-row embedding, which is all the trainer requires.
TEACHER=$WORK/teacher_$SHAPE
[ -f "$TEACHER/model.safetensors" ] ||
  python -m recipes.benchmark --make-teacher "$TEACHER" --teacher-shape "$SHAPE" --tokenizer assets/tokenizer
# The 1.4B configs are written for 8+ GPUs and a 1M-token global batch on The Pile, with selective AC: here one
# device, one local batch per step (no gradient accumulation), the bundled corpus, no AC.
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
    return 1
  fi
  echo "[gpu_checks] $label (${SECONDS}s elapsed)"
  local start=$SECONDS status=0
  python -m recipes.benchmark --baseline "$BASELINE" --let "$LET" --label "$label" --out "$WORK/$label" "$@" ||
    status=$?
  local per_run=$(( (SECONDS - start) / runs ))
  [ "$per_run" -gt "$PER_RUN_S" ] && PER_RUN_S=$per_run
  mkdir -p "$REPORTS/$label"
  cp "$WORK/$label"/benchmark.* "$REPORTS/$label/" 2>/dev/null || true
  for log in "$WORK/$label"/runs/*/train.log; do
    [ -f "$log" ] && cp "$log" "$REPORTS/$label/$(basename "$(dirname "$log")").log"
  done
  local let_log=$WORK/$label/runs/let_1/train.log
  if [ -f "$let_log" ]; then
    NOTES+=("$label: $(grep -o 'teacher loaded.*' "$let_log" | head -1 || true); \
$(grep -o 'teaching finished.*' "$let_log" | head -1 || true)")
  fi
  if [ "$status" -eq 0 ]; then
    DONE+=("$WORK/$label")
  else
    NOTES+=("FAILED $label (exit $status): see $REPORTS/$label/*.log")
    echo "[gpu_checks] ${NOTES[-1]}"
  fi
  return "$status"
}

# 1. correctness: the default run on this device (its own config: debug student, tiny pretrained teacher)
if wants correct; then
  echo "[gpu_checks] correct (${SECONDS}s elapsed)"
  log=$REPORTS/correct.log
  if ./run_train.sh --job.dump_folder "$WORK/correct" "${CORRECT[@]}" > "$log.raw" 2>&1; then status=0; else status=$?; fi
  sed 's/\x1b\[[0-9;]*m//g' "$log.raw" > "$log" && rm "$log.raw"
  last() { grep -oE "$1" "$log" | tail -1 || true; }
  NOTES+=("correct (exit $status): $(grep -c '\[LET\] step:' "$log" || true) [LET] lines; $(last 'teacher loaded.*')")
  NOTES+=("correct: $(last 'teaching finished.*')")
  NOTES+=("correct: last training line: $(last 'step: *[0-9]+ +loss: *[^ ]+')")
  if [ "$status" -ne 0 ] || grep -qiE 'loss: *-?(nan|inf)' "$log"; then
    NOTES+=("FAILED correct: exit $status or a non-finite loss; see $log")
  fi
  printf '[gpu_checks] %s\n' "${NOTES[@]}"
fi

# 2. the cost of LET at the paper's size (the setup of the H200 numbers in LET_METHOD.md: compile, no AC)
wants compile && check "$PREFIX-compile" $((2 * REPEATS)) "${STEPS[@]}" --repeats "$REPEATS" -- "${COMMON[@]}" || true

# 3. the teacher under CUDA graphs; its losses against the default compiled teacher of check 2 (and that one's two
#    repeats against each other: the noise floor of the same config)
if wants levers; then
  if [ -n "${DRY_RUN:-}" ]; then LEVER=(); else LEVER=(--let.teacher_compile_mode reduce-overhead); fi
  if check "$PREFIX-compile-teacher-cudagraphs" 2 "${STEPS[@]}" --repeats 1 -- "${COMMON[@]}" "${LEVER[@]}" &&
      [ -d "$WORK/$PREFIX-compile/runs/let_1" ]; then
    NOTES+=("CUDA-graph teacher vs default compiled teacher: $(python -m recipes.benchmark --loss-diff \
      "$WORK/$PREFIX-compile-teacher-cudagraphs/runs/let_1" "$WORK/$PREFIX-compile/runs/let_1")")
    [ -d "$WORK/$PREFIX-compile/runs/let_2" ] && NOTES+=("default compiled teacher, two repeats (noise floor): $(
      python -m recipes.benchmark --loss-diff "$WORK/$PREFIX-compile/runs/let_1" "$WORK/$PREFIX-compile/runs/let_2")")
  fi
fi

# 4. float8 linears (student only: the teacher stays bf16, the LET projection and the output layer stay high precision)
if wants float8; then
  if [ -n "${DRY_RUN:-}" ]; then
    NOTES+=("skipped $PREFIX-float8: GPU-only (DRY_RUN)")
  elif ! python -c "import torchao" 2>/dev/null; then
    NOTES+=("skipped $PREFIX-float8: torchao is not installed (pip install 'let-titan[float8]')")
  else
    check "$PREFIX-compile-float8" 2 "${STEPS[@]}" --repeats 1 --no-teacher-timing -- "${COMMON[@]}" \
      --model.converters quantize.linear.float8 || true
  fi
fi

SUMMARY=$REPORTS/gpu_checks.md
{
  echo "## GPU checks: LET vs baseline ($MODE)"
  echo
  echo "Command: \`${DRY_RUN:+DRY_RUN=1 }CHECKS=\"$CHECKS\" bash recipes/gpu_checks.sh\`; ${SECONDS}s in all. Tokens/s per"
  echo "device, mean (min..max) over repeats of each run's median step; ratios per alternating baseline/LET pair."
  echo "Details per check in its benchmark.md."
  echo
  if [ ${#DONE[@]} -gt 0 ]; then
    python -m recipes.benchmark --summarize "${DONE[@]}"
  else
    echo "(no benchmark check finished)"
  fi
  for note in "${NOTES[@]}"; do echo "- $note"; done
} > "$SUMMARY"
echo
cat "$SUMMARY"
echo "[gpu_checks] wrote $SUMMARY"
