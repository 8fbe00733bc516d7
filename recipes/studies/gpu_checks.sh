#!/usr/bin/bash
# The one script to run on a GPU machine (1x H200, bf16): what a teaching step costs at 1.4B, resolved to +-0.5%,
# where that time goes, and whether the 7B line runs. Checks, in this order (docs/benchmarks.md explains each):
#   paired      (a) 1.4B student, random SmolLM-135M-shaped teacher, compile, batch 4 x 2048: plain and LET steps in
#               one process, blocks of BLOCK steps (the first unclocked) in palindromic rounds (--paired):
#               LET/plain tokens/s while teaching with its 95% interval, and the rounds +-0.5% needs
#   breakdown   (b) the same, LET's pieces added one arm at a time (--breakdown): ms per step of the teacher forward,
#               token mapping, term forward + backward, guard and stop-rule check
#   7b          (c) train_configs/let_7b.toml as shipped, on one GPU, with a random Llama-3.2-1B-shaped teacher and
#               only the overrides one GPU needs (local batch 1, no gradient accumulation, bundled corpus,
#               checkpointing and validation off), 8 steps with stop_step 4, then baseline_7b.toml the same way, all
#               under a hard timeout (T7B): tokens/s, MFU, peak reserved, teacher released; on an OOM its measured peak
#   cudagraphs  (d) (a) with the teacher under CUDA graphs (let.teacher_compile_mode=reduce-overhead), and its
#               LET/plain ratio against (a)'s with the interval of the difference
# Two calls on one warm machine, sharing WORK (teachers, inductor cache), about 13 minutes together (estimated from
# the H100 lease: 1.4B steps of ~0.18-0.20 s, ~60 s start-up and compile per 1.4B process):
#   WORK=/tmp/gpuwork CHECKS="paired breakdown" OUT=$OUT bash recipes/studies/gpu_checks.sh  # ~5.5 min
#   WORK=/tmp/gpuwork CHECKS="7b cudagraphs" OUT=$OUT bash recipes/studies/gpu_checks.sh     # ~6.5 min
#   DRY_RUN=1 REPEATS=1 bash recipes/studies/gpu_checks.sh  # the same sequence on CPU: debug student, tiny teacher,
#                                                          # no compile; (d) needs CUDA graphs (skipped)
# A check that would end past BUDGET_S seconds is skipped with a message. OUT receives at most three files:
# gpu_checks.md (every check's table and notes), logs.tar.gz (reports, JSON, every run's log) and nothing else.
# Knobs: BUDGET_S (450), ROUNDS (20) / ROUNDS_BREAKDOWN (5) / ROUNDS_CUDAGRAPHS (12) measured rounds, BLOCK (5 steps),
# REPEATS (1: 7B LET/baseline pairs), T7B (420 s, the 7B check's hard timeout), WORK (scratch folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

WORK=${WORK:-$(mktemp -d /tmp/let_gpu_checks.XXXXXX)}
REPORTS=${OUT:-$WORK/reports}
BUDGET_S=${BUDGET_S:-450}
REPEATS=${REPEATS:-1}
CHECKS=${CHECKS:-"paired breakdown 7b cudagraphs"}
mkdir -p "$WORK" "$REPORTS"
# one inductor/FX cache for every run of this script (and of a later call with the same WORK)
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$WORK/inductor_cache}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

if [ -n "${DRY_RUN:-}" ]; then
  MODE="DRY_RUN on $(nproc) CPU cores: debug student, tiny teacher, no compile"
  LET=train_configs/let_debug.toml
  SHAPE=debug SHAPE_7B=debug  # the project's tiny pretrained teacher (assets/teacher_debug): nothing to build
  SIZE=(--training.local_batch_size 2 --training.seq_len 64)
  FEATURES=()  # inductor on 2 CPU cores takes minutes and measures nothing about a GPU
  ROUNDS=${ROUNDS:-4} ROUNDS_BREAKDOWN=${ROUNDS_BREAKDOWN:-2} ROUNDS_CUDAGRAPHS=${ROUNDS_CUDAGRAPHS:-2}
  BLOCK=${BLOCK:-4} WARMUP_ROUNDS=0
  # the rehearsal also checks the method: plain again (A = B) and plain plus an extra student forward (a known cost)
  # (the checked arms sit next to the plain arm they are compared with)
  PAIRED_ARMS=(--arms plain,plain,plain+forward,let)
  # the 7B configs with the debug student, no compile and short windows (the overrides of the GPU run still apply)
  SEVEN_B_SIZE=(--model.flavor debugmodel --let.student_layer 1 --compile.no-enable --training.seq_len 64)
  T7B=${T7B:-120}
  EST=(paired=20 breakdown=30 7b=25 cudagraphs=20)
  # one thread per process: predictable on shared CI boxes, where spinning OpenMP threads of two jobs collide
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
  MODE="GPU: 1.4B student, bf16, compile"
  LET=train_configs/let_1.4b.toml
  SHAPE=smollm-135m SHAPE_7B=llama-3.2-1b
  SIZE=(--training.local_batch_size 4 --training.seq_len 2048)
  FEATURES=(--compile.enable)
  ROUNDS=${ROUNDS:-20} ROUNDS_BREAKDOWN=${ROUNDS_BREAKDOWN:-5} ROUNDS_CUDAGRAPHS=${ROUNDS_CUDAGRAPHS:-12}
  # one warm-up round: every arm compiles (and the teacher loads) before anything is measured
  BLOCK=${BLOCK:-5} WARMUP_ROUNDS=1
  PAIRED_ARMS=()
  SEVEN_B_SIZE=()
  T7B=${T7B:-420}
  # seconds each check takes, for the budget: start-up + compile ~60 s, then (rounds + 1) x 2 x arms x BLOCK steps
  # of ~0.19 s: paired 420 steps, breakdown 420, cudagraphs 260; 7b: two runs of 7B init + compile + 8 steps
  EST=(paired=150 breakdown=150 7b=$((T7B - 60)) cudagraphs=120)
  python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: use DRY_RUN=1 on a CPU machine'"
fi
echo "[gpu_checks] $MODE; checks: $CHECKS; budget ${BUDGET_S}s; scratch $WORK; reports $REPORTS"
wants() { [[ " $CHECKS " == *" $1 "* ]]; }
estimate() { local pair; for pair in "${EST[@]}"; do [ "${pair%%=*}" != "$1" ] || echo "${pair#*=}"; done; }
NOTES=()
DONE=()
note() { NOTES+=("$1"); echo "[gpu_checks] $1"; }
# fits LABEL: whether the check's estimated time still ends inside BUDGET_S
fits() {
  local est; est=$(estimate "$1")
  if [ $((SECONDS + est)) -gt "$BUDGET_S" ]; then
    note "skipped $1: about ${est}s would end past BUDGET_S=${BUDGET_S}s (at ${SECONDS}s)"
    return 1
  fi
  echo "[gpu_checks] $1 (${SECONDS}s elapsed)"
}

# Random-weight teachers of the real shapes (cost does not depend on the weights). Their tokenizer is the project's
# 4096-id one: every id it emits indexes the teachers' embeddings, which is all the trainer requires.
teacher() {
  if [ "$1" = debug ]; then echo assets/teacher_debug; return; fi
  local folder=$WORK/teacher_$1
  [ -f "$folder/model.safetensors" ] ||
    python -m recipes.reports.benchmark --make-teacher "$folder" --teacher-shape "$1" --tokenizer assets/tokenizer >&2
  echo "$folder"
}
# The 1.4B config is written for 8+ GPUs and a 1M-token global batch on The Pile, with selective AC: here one
# device, one local batch per step (no gradient accumulation), the bundled corpus, no AC.
common_1_4b() {
  local folder; folder=$(teacher "$SHAPE")
  COMMON=(--let.teacher_path "$folder" --model.hf_assets_path "$folder" --training.dataset sample_corpus
          --training.global_batch_size=-1 --activation_checkpoint.mode none "${SIZE[@]}" "${FEATURES[@]}")
}

# paired LABEL ROUNDS MODE... -- TRAIN_ARGS...: one paired or breakdown process; its table goes into gpu_checks.md
paired() {
  local label=$1 rounds=$2 mode=()
  shift 2
  while [ "$1" != "--" ]; do mode+=("$1"); shift; done
  shift
  local status=0
  python -m recipes.reports.benchmark "${mode[@]}" --let "$LET" --rounds "$rounds" --block-steps "$BLOCK" \
    --warmup-rounds "$WARMUP_ROUNDS" --label "$label" --out "$WORK/$label" -- "$@" || status=$?
  if [ "$status" -eq 0 ]; then
    DONE+=("$WORK/$label/paired.md")
  else
    note "FAILED $label (exit $status): see $label/run/train.log in logs.tar.gz"
  fi
  return "$status"
}

# (a) LET's cost at 1.4B, plain and teaching steps in one process
if wants paired && fits paired; then
  common_1_4b
  paired 1.4B-paired "$ROUNDS" --paired "${PAIRED_ARMS[@]}" -- "${COMMON[@]}" || true
fi

# (b) where the time goes: one arm per piece of LET's step
if wants breakdown && fits breakdown; then
  common_1_4b
  paired 1.4B-breakdown "$ROUNDS_BREAKDOWN" --breakdown -- "${COMMON[@]}" || true
fi

# (c) the 7B line on one GPU. Computed, not measured: 7,526,944,768 parameters; fp32 weights, fp32 gradients and
# AdamW's two fp32 moments, 16 bytes per parameter = 112.2 GiB on a ~139 GiB card; without FSDP (one GPU) nothing is
# sharded and bf16 comes from autocast, whose bf16 weight copies (~14 GiB) live during the forward, before the
# gradients exist; the teacher adds 2.3 GiB (bf16); full AC keeps activations near 1 GiB at local batch 1 x 2048,
# logits + CE ~2.5 GiB: a peak of about 119 GiB expected (docs/benchmarks.md, "The 7B line on one GPU").
# Checkpointing off: a final save would write ~30 GB.
if wants 7b && fits 7b; then
  folder=$(teacher "$SHAPE_7B")
  SEVEN_B=(--let.teacher_path "$folder" --training.dataset sample_corpus --training.local_batch_size 1
           --training.global_batch_size=-1 "${SEVEN_B_SIZE[@]}")
  status=0
  timeout -k 30 "$T7B" python -m recipes.reports.benchmark --let train_configs/let_7b.toml --baseline train_configs/baseline_7b.toml \
    --let-first --ngpu 1 --steps 8 --stop-step 4 --warmup 2 --repeats "$REPEATS" --no-teacher-timing --label 7b \
    --out "$WORK/7b" -- "${SEVEN_B[@]}" || status=$?
  let_log=$WORK/7b/runs/let_1/train.log
  if [ -f "$let_log" ]; then
    for pattern in 'teacher loaded.*' 'teaching finished.*' 'Peak FLOPS used.*' '(Tried to allocate|this process has).*'; do
      found=$(grep -oE "$pattern" "$let_log" | head -2 || true)
      [ -z "$found" ] || note "7b LET: ${found//$'\n'/; }"
    done
  fi
  if [ "$status" -eq 0 ]; then
    DONE+=("$WORK/7b/benchmark.md")
  else
    note "FAILED 7b (exit $status; 124 = hard timeout of ${T7B}s): see 7b/runs/*/train.log in logs.tar.gz"
  fi
fi

# (d) the CUDA-graph teacher through the paired method, against (a)
if wants cudagraphs; then
  if [ -n "${DRY_RUN:-}" ]; then
    note "skipped 1.4B-cudagraphs: CUDA graphs need a GPU (DRY_RUN)"
  elif fits cudagraphs; then
    common_1_4b
    if paired 1.4B-cudagraphs "$ROUNDS_CUDAGRAPHS" --paired -- "${COMMON[@]}" \
        --let.teacher_compile_mode reduce-overhead && [ -f "$WORK/1.4B-paired/paired.json" ]; then
      note "$(python -m recipes.reports.benchmark --paired-diff "$WORK/1.4B-paired" "$WORK/1.4B-cudagraphs")"
    fi
  fi
fi

SUMMARY=$REPORTS/gpu_checks.md
{
  echo "## GPU checks: the cost of LET ($MODE)"
  echo
  echo "Command: \`${DRY_RUN:+DRY_RUN=1 }CHECKS=\"$CHECKS\" bash recipes/studies/gpu_checks.sh\`; ${SECONDS}s in all."
  echo
  for report in "${DONE[@]}"; do cat "$report"; echo; done
  [ ${#DONE[@]} -gt 0 ] || echo "(no check finished)"
  for line in "${NOTES[@]}"; do echo "- $line"; done
} > "$SUMMARY"
# every report, JSON and run log in one file (the device returns few, small files)
(cd "$WORK" && find . -path ./inductor_cache -prune -o -path './teacher_*' -prune -o -type f \
  \( -name '*.md' -o -name '*.json' -o -name '*.log' \) -print | tar czf "$REPORTS/logs.tar.gz" -T -)
echo
cat "$SUMMARY"
echo "[gpu_checks] wrote $SUMMARY and $REPORTS/logs.tar.gz"
