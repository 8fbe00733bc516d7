#!/usr/bin/bash
# The small-scale replication of docs/results.md, end to end, in one command: data, teacher, then baseline, LET, RKD
# and SALT students x 2 seeds (same teacher, data and steps; only [let] differs) and their comparison:
#   bash recipes/studies/replicate.sh          # data, teacher, baseline + RKD + SALT + LET x 2 seeds, comparison
#   KD=0 bash recipes/studies/replicate.sh     # baseline + LET only (the docs/results.md table as first published)
#   EXTRA=1 bash recipes/studies/replicate.sh  # also lambda_0 in {0.01, 1.0} and the L2L layer choice (seed 0)
# Finished steps are skipped when their outputs exist, so an interrupted run resumes where it stopped, and it may run
# beside recipes/studies/study_init.sh (a run both want trains once). Time on 2 CPU cores: docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source recipes/studies/replication_setup.sh  # OUT, prepare_replication, run
SEEDS=${SEEDS:-"0 1"}

prepare_replication

for seed in $SEEDS; do
  run "baseline_s$seed" train_configs/replication_baseline.toml --debug.seed "$seed"
  run "let_s$seed" train_configs/replication_let.toml --debug.seed "$seed"
  if [ "${KD:-1}" = 1 ]; then  # the same teacher, data and steps; only [let] differs (signal = "logits")
    run "rkd_s$seed" train_configs/replication_rkd.toml --debug.seed "$seed"
    run "salt_s$seed" train_configs/replication_salt.toml --debug.seed "$seed"
  fi
done
group() { echo "$1=$(printf "$OUT/$2_s%s," $SEEDS | sed 's/,$//')"; }
LET_RUNS=()
if [ "${KD:-1}" = 1 ]; then
  LET_RUNS+=("$(group RKD rkd)" "$(group SALT salt)")
fi
LET_RUNS+=("$(group LET let)")
if [ "${EXTRA:-0}" = 1 ]; then
  run let_lambda0.01_s0 train_configs/replication_let.toml --debug.seed 0 --let.lambda_0 0.01
  run let_lambda1.0_s0 train_configs/replication_let.toml --debug.seed 0 --let.lambda_0 1.0
  run let_L2L_s0 train_configs/replication_let.toml --debug.seed 0 --let.student_layer 5
  LET_RUNS+=("lambda_0.01=$OUT/let_lambda0.01_s0" "lambda_1.0=$OUT/let_lambda1.0_s0" "L2L=$OUT/let_L2L_s0")
fi

x python -m recipes.reports.compare --baseline $(printf "$OUT/baseline_s%s " $SEEDS) --let "${LET_RUNS[@]}" --out "$OUT/compare"
