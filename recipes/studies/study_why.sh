#!/usr/bin/bash
# Why does LET not help at the scale we can run (issue 27; docs/results.md, readings fixed before the runs)? On one
# machine, from a pinned git worktree: the replication's data and teacher; baseline, LET (stop_step 100) and
# whole-run LET (stop_step 500), seeds 0 and 1, checkpoints kept at steps 100 and 500; then the knowledge probe at
# both steps, bits per byte at step 500 on the out-of-domain text (Debian's fortunes) and on the held-out in-domain
# text, and every reading against its pre-registered threshold:
#   bash recipes/studies/study_why.sh                # pins HEAD in ../let-titan-why (PIN=COMMIT, WORKTREE=DIR to choose)
#   SEEDS="0 1 2" bash recipes/studies/study_why.sh  # a third seed, once a variant meets the threshold in both
#   DRY_RUN=1 bash recipes/studies/study_why.sh      # print every command that would run, run nothing
#   WIDE=1 bash recipes/studies/study_why.sh         # then also a 384-wide student (flavor debugwide, ~2x the FLOPs per
#                                                    # token): baseline and LET, same seeds, read the same way (~3.3 h more)
# About 3 CPU-hours on 2 idle cores (teacher ~25 min, six runs ~25 min each, measurements ~15 min); run it with
# nothing else on the machine. Finished runs and measurements are skipped, interrupted runs resume from their last
# checkpoint (recipes/studies/replication_setup.sh). The out-of-domain text is fetched with apt-get download; offline, give
# FORTUNES=/path/to/usr/share/games/fortunes (the package unpacked elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../.."

# The runs take hours while the repository moves: they run from a worktree pinned to one commit, with its own code
# first on the import path (the editable install points at the main checkout).
if [ "${STUDY_WHY_PINNED:-0}" != 1 ]; then
  WORKTREE=${WORKTREE:-$(cd .. && pwd)/let-titan-why}
  if [ -d "$WORKTREE" ]; then
    pinned=$(git -C "$WORKTREE" rev-parse HEAD)
    if [ -n "${PIN:-}" ] && [ "$(git rev-parse "$PIN")" != "$pinned" ]; then
      echo "PIN=$PIN: WORKTREE=$WORKTREE is pinned at $pinned; give another WORKTREE or leave PIN unset"
      exit 2
    fi
  else
    pinned=$(git rev-parse "${PIN:-HEAD}")
    if [ "${DRY_RUN:-0}" = 1 ]; then
      echo "git worktree add --detach $WORKTREE $pinned"
    else
      git worktree add --detach "$WORKTREE" "$pinned"
    fi
  fi
  if [ "${DRY_RUN:-0}" != 1 ]; then  # a dry run prints the plan from this checkout
    for tool in recipes/probes/knowledge_probe.py recipes/assets/build_ood_data.py recipes/reports/paired_by_seed.py; do
      git -C "$WORKTREE" cat-file -e "HEAD:$tool" 2>/dev/null ||
        { echo "PIN=$pinned has no $tool: commit the study's tools, then pin that commit"; exit 2; }
    done
    cd "$WORKTREE"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    echo "[study_why] running from $WORKTREE at $pinned"
    STUDY_WHY_PINNED=1 exec bash recipes/studies/study_why.sh
  fi
fi

source recipes/studies/replication_setup.sh  # OUT, x, prepare_replication, run
SEEDS=${SEEDS:-"0 1"}
STUDY=why
VARIANTS=(baseline let let_whole)
KEEP_STEPS=(100 500)  # what the probe reads; steps 200-400 (about 90 MB each) are removed once a run has finished
declare -A CONFIG=([baseline]=train_configs/replication_baseline.toml [let]=train_configs/replication_let.toml
                   [let_whole]=train_configs/replication_let.toml)
declare -A EXTRA=([baseline]="" [let]="" [let_whole]="--let.stop_step 500")
# every run and measurement names the study's data and teacher, whatever the TOML says
DATA=(--training.dataset_path "$OUT/data/train.jsonl" --validation.dataset_path "$OUT/data/validation.jsonl")
TEACHER=(--let.teacher_path "$OUT/teacher")

folder() {  # folder VARIANT SEED: the run's name under $OUT (baseline and LET are the replication's own names)
  case $1 in
    baseline|let) echo "$1_s$2" ;;
    *) echo "$STUDY/$1_s$2" ;;
  esac
}

prune() {  # prune NAME: a finished run keeps only the KEEP_STEPS checkpoints
  local name=$1 step
  for step in 200 300 400; do
    if [ -d "$OUT/$name/checkpoint/step-$step" ] ||
        { [ "${DRY_RUN:-0}" = 1 ] && ! grep -qs "Training completed" "$OUT/$name.log"; }; then
      x rm -rf "$OUT/$name/checkpoint/step-$step"
    fi
  done
}

measure() {  # measure JSON CMD...: run CMD unless JSON exists (each measurement is written once)
  local json=$1
  shift
  [ -f "$json" ] || x "$@" --json "$json"
}

prepare_replication
for seed in $SEEDS; do
  for variant in "${VARIANTS[@]}"; do
    # shellcheck disable=SC2086  # EXTRA values are word lists
    run "$(folder "$variant" "$seed")" "${CONFIG[$variant]}" --debug.seed "$seed" "${DATA[@]}" "${TEACHER[@]}" \
      --checkpoint.interval 100 ${EXTRA[$variant]}
    prune "$(folder "$variant" "$seed")"
  done
done

if [ ! -f "$OUT/ood/ood.jsonl" ]; then
  if [ -n "${FORTUNES:-}" ]; then
    x python -m recipes.assets.build_ood_data --out "$OUT/ood" --fortunes "$FORTUNES"
  else
    x python -m recipes.assets.build_ood_data --out "$OUT/ood" --download
  fi
fi
measure "$OUT/$STUDY/ood/teacher.json" python -m recipes.probes.bits_per_byte --data "$OUT/ood/ood.jsonl" --teacher "$OUT/teacher"
measure "$OUT/$STUDY/in_domain/teacher.json" python -m recipes.probes.bits_per_byte --data "$OUT/data/validation.jsonl" \
  --teacher "$OUT/teacher"
for seed in $SEEDS; do
  for variant in "${VARIANTS[@]}"; do
    run_dir=$OUT/$(folder "$variant" "$seed")
    for step in "${KEEP_STEPS[@]}"; do
      measure "$OUT/$STUDY/probe/${variant}_s${seed}_step$step.json" python -m recipes.probes.knowledge_probe \
        --checkpoint "$run_dir/checkpoint/step-$step" --config "${CONFIG[$variant]}" --teacher "$OUT/teacher" \
        --validation.dataset_path "$OUT/data/validation.jsonl" --sequences 128
    done
    for text in ood in_domain; do
      data=$OUT/ood/ood.jsonl
      [ "$text" = ood ] || data=$OUT/data/validation.jsonl
      measure "$OUT/$STUDY/$text/${variant}_s$seed.json" python -m recipes.probes.bits_per_byte --data "$data" \
        --checkpoint "$run_dir/checkpoint/step-500" --config "${CONFIG[$variant]}" "${TEACHER[@]}"
    done
  done
done

# the readings of docs/results.md: validation loss paired by seed (recipes.reports.compare), the same for both texts in one
# tool (nats per token: one tokenizer for all), and the probe's teacher-head bits per byte
group() { echo "$1=$(for seed in $SEEDS; do printf "%s," "$OUT/$(folder "$2" "$seed")"; done | sed 's/,$//')"; }
x python -m recipes.reports.compare --baseline $(for seed in $SEEDS; do printf "%s " "$OUT/$(folder baseline "$seed")"; done) \
  --let "$(group LET let)" "$(group whole-run let_whole)" --out "$OUT/$STUDY/compare"
for text in ood in_domain; do
  x python -m recipes.reports.paired_by_seed --results "$OUT/$STUDY/$text" --key nats_per_token --threshold -0.02 \
    --json "$OUT/$STUDY/paired_$text.json"
done
x python -m recipes.reports.paired_by_seed --results "$OUT/$STUDY/probe" --key mapped_bits_per_byte --threshold -0.05 \
  --json "$OUT/$STUDY/paired_probe.json"

# WIDE=1: the same question one width up (flavor debugwide, 384 wide, same depth), its own baselines and readings,
# and how much of block k is still the embedding at init for both widths (recipes.probes.init_probe)
[ "${WIDE:-0}" = 1 ] || exit 0
WIDE_RUNS=(baseline let)
for seed in $SEEDS; do
  for variant in "${WIDE_RUNS[@]}"; do
    run "$STUDY/wide/${variant}_s$seed" "${CONFIG[$variant]}" --model.flavor debugwide --debug.seed "$seed" \
      "${DATA[@]}" "${TEACHER[@]}" --checkpoint.interval 100
    prune "$STUDY/wide/${variant}_s$seed"
  done
done
measure "$OUT/$STUDY/wide/init_probe.json" python -m recipes.probes.init_probe --config train_configs/replication_let.toml \
  --flavors debugmodel debugwide "${TEACHER[@]}"
for seed in $SEEDS; do
  for variant in "${WIDE_RUNS[@]}"; do
    run_dir=$OUT/$STUDY/wide/${variant}_s$seed
    for step in "${KEEP_STEPS[@]}"; do
      measure "$OUT/$STUDY/wide/probe/${variant}_s${seed}_step$step.json" python -m recipes.probes.knowledge_probe \
        --checkpoint "$run_dir/checkpoint/step-$step" --config "${CONFIG[$variant]}" --model.flavor debugwide \
        --teacher "$OUT/teacher" --validation.dataset_path "$OUT/data/validation.jsonl" --sequences 128
    done
    for text in ood in_domain; do
      data=$OUT/ood/ood.jsonl
      [ "$text" = ood ] || data=$OUT/data/validation.jsonl
      measure "$OUT/$STUDY/wide/$text/${variant}_s$seed.json" python -m recipes.probes.bits_per_byte --data "$data" \
        --checkpoint "$run_dir/checkpoint/step-500" --config "${CONFIG[$variant]}" --model.flavor debugwide \
        "${TEACHER[@]}"
    done
  done
done
wide() { for seed in $SEEDS; do printf "%s," "$OUT/$STUDY/wide/$1_s$seed"; done | sed 's/,$//'; }
x python -m recipes.reports.compare --baseline $(wide baseline | tr , ' ') --let "LET-wide=$(wide let)" \
  --out "$OUT/$STUDY/wide/compare"
for text in ood in_domain; do
  x python -m recipes.reports.paired_by_seed --results "$OUT/$STUDY/wide/$text" --key nats_per_token --threshold -0.02 \
    --json "$OUT/$STUDY/wide/paired_$text.json"
done
x python -m recipes.reports.paired_by_seed --results "$OUT/$STUDY/wide/probe" --key mapped_bits_per_byte --threshold -0.05 \
  --json "$OUT/$STUDY/wide/paired_probe.json"
