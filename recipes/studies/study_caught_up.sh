#!/usr/bin/bash
# The caught-up stop rule on the replication harness (docs/results.md): a teacher the student overtakes (the
# replication teacher's step-100 checkpoint) teaching with the fixed 20% (stop_step 100) against stop_when =
# "caught_up" (the same cap), then the comparison with the replication baselines:
#   bash recipes/studies/study_caught_up.sh  # seeds 0 and 1 (SEEDS="0" for one)
# Finished runs are skipped and interrupted ones resume (recipes/studies/replication_setup.sh). About 25 min per run on 2
# idle cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
source recipes/studies/replication_setup.sh  # OUT, x, prepare_replication, run
SEEDS=${SEEDS:-"0 1"}
WEAK=$OUT/teacher_step100
# the rule's settings as the study ran them (the [let] defaults): a check every 10 steps on 4 sequences, 5 pooled
CAUGHT_UP=(--let.stop_when caught_up --let.caught_up_every 10 --let.caught_up_window 5 --let.caught_up_sequences 4)

prepare_replication
if [ ! -f "$WEAK/model.safetensors" ]; then
  x python -m recipes.reports.export_hf --checkpoint "$OUT/teacher_run/checkpoint/step-100" --flavor debug_teacher \
    --tokenizer assets/tokenizer --out "$WEAK"
fi
[ -f "$OUT/caught_up/bpb_teacher_step100.json" ] || x python -m recipes.probes.bits_per_byte \
  --data "$OUT/data/validation.jsonl" --teacher "$WEAK" --json "$OUT/caught_up/bpb_teacher_step100.json"

for seed in $SEEDS; do
  run "baseline_s$seed" train_configs/replication_baseline.toml --debug.seed "$seed"
  run "caught_up/fixed_s$seed" train_configs/replication_let.toml --debug.seed "$seed" --let.teacher_path "$WEAK"
  run "caught_up/caught_up_s$seed" train_configs/replication_let.toml --debug.seed "$seed" \
    --let.teacher_path "$WEAK" "${CAUGHT_UP[@]}"
done
group() { echo "$1=$(printf "$OUT/caught_up/$2_s%s," $SEEDS | sed 's/,$//')"; }
x python -m recipes.reports.compare --baseline $(printf "$OUT/baseline_s%s " $SEEDS) \
  --let "$(group fixed-20% fixed)" "$(group caught-up caught_up)" --out "$OUT/caught_up/compare"
