#!/usr/bin/bash
# The student-initialisation study of issue 13 (docs/results.md), in one command (about 2.5 hours on 2 idle cores):
#   bash recipes/study_init.sh                                # screen (seed 0), then 2 seeds for SEEDS2_VARIANTS
#   SEEDS2_VARIANTS="hf lambda0.3" bash recipes/study_init.sh # the second stage's variants, picked after screening
#   DRY_RUN=1 bash recipes/study_init.sh                      # print every command that would run, run nothing
# On the replication setup (same data, teacher, 500 steps), every LET variant is paired with its own baseline (an
# init change changes the baseline too): paper (the replication's LET, for reference), hf (student.init = hf, against
# the hf baseline), linear (learned projection), stop250 (alignment on 50% of training), lambda0.3. Each run saves a
# checkpoint every 100 steps; recipes.similarity gives linear CKA and the run's cosine between block k and the
# teacher at each, for baselines and LET alike (similarity/NAME_stepN.json). Finished runs and measurements are
# skipped, so an interrupted study resumes where it stopped; runs go to outputs/replication/init_study.
set -euo pipefail
cd "$(dirname "$0")/.."
source recipes/replication_setup.sh  # OUT, x, prepare_replication, run
STUDY=init_study
VARIANTS=(paper hf linear stop250 lambda0.3)
SEEDS2_VARIANTS=${SEEDS2_VARIANTS:-"hf stop250"}  # stage 2: these variants (and their baselines) also get seed 1
CHECKPOINT_STEPS=(100 200 300 400 500)
CHECKPOINTS=(--checkpoint.enable --checkpoint.interval 100)

declare -A LET_ARGS=([paper]="" [hf]="--student.init hf" [linear]="--let.projection linear"
                     [stop250]="--let.stop_step 250" [lambda0.3]="--let.lambda_0 0.3")
declare -A BASELINE=([paper]=baseline [hf]=baseline_hf [linear]=baseline [stop250]=baseline [lambda0.3]=baseline)
declare -A BASELINE_ARGS=([baseline]="" [baseline_hf]="--student.init hf")

similarity() {  # similarity NAME CONFIG: CKA and cosine at every saved step of one run
  local name=$1 config=$2 step
  [ -z "${PLANNED[similarity/$name]:-}" ] || return 0
  PLANNED[similarity/$name]=1
  for step in "${CHECKPOINT_STEPS[@]}"; do
    if [ ! -f "$OUT/$STUDY/similarity/${name}_step$step.json" ]; then
      x python -m recipes.similarity --checkpoint "$OUT/$STUDY/$name/checkpoint/step-$step" --config "$config" \
        --teacher "$OUT/teacher" --json "$OUT/$STUDY/similarity/${name}_step$step.json"
    fi
  done
}

pair() {  # pair VARIANT SEED: the variant's LET run and its baseline (each once), with their similarities
  local variant=$1 seed=$2 base=${BASELINE[$1]}
  # shellcheck disable=SC2086  # the *_ARGS values are word lists
  run "$STUDY/${base}_s$seed" train_configs/replication_baseline.toml --debug.seed "$seed" \
    ${BASELINE_ARGS[$base]} "${CHECKPOINTS[@]}"
  # shellcheck disable=SC2086
  run "$STUDY/let_${variant}_s$seed" train_configs/replication_let.toml --debug.seed "$seed" \
    ${LET_ARGS[$variant]} "${CHECKPOINTS[@]}"
  similarity "${base}_s$seed" train_configs/replication_baseline.toml
  similarity "let_${variant}_s$seed" train_configs/replication_let.toml
}

for variant in $SEEDS2_VARIANTS; do  # before hours of runs, not after
  [ -n "${BASELINE[$variant]:-}" ] || { echo "SEEDS2_VARIANTS: unknown variant '$variant' (${VARIANTS[*]})"; exit 2; }
done

prepare_replication
for variant in "${VARIANTS[@]}"; do  # stage 1: screening, seed 0
  pair "$variant" 0
done
for variant in $SEEDS2_VARIANTS; do  # stage 2: a second seed for the most informative variants
  pair "$variant" 1
done

for variant in "${VARIANTS[@]}"; do  # one comparison per pair: the variant against its own baseline
  seeds="0"
  [[ " $SEEDS2_VARIANTS " == *" $variant "* ]] && seeds="0 1"
  x python -m recipes.compare --baseline $(printf "$OUT/$STUDY/${BASELINE[$variant]}_s%s " $seeds) \
    --let "$variant=$(printf "$OUT/$STUDY/let_${variant}_s%s," $seeds | sed 's/,$//')" \
    --out "$OUT/$STUDY/compare_$variant"
done
