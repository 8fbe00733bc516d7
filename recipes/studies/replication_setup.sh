# Shared by recipes/studies/replicate.sh and recipes/studies/study_init.sh (sourced, not run): the replication's data and teacher,
# and one student run. OUT (env REPLICATION_OUT, default outputs/replication) is where everything goes; DRY_RUN=1 prints
# each command that would run instead of running it. Finished runs are skipped; an interrupted run (killed, or the
# machine went away) resumes from its last checkpoint (every 100 steps), so a study can span several sessions.
OUT=${REPLICATION_OUT:-outputs/replication}
TRAIN=${REPLICATION_TRAIN:-./run_train.sh}  # what trains one run (tests swap in a stand-in)

x() {  # x CMD...: run it, or print it under DRY_RUN=1
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "$*"; else "$@"; fi
}

prepare_replication() {  # the CPython-docs data and the replication teacher (exported once)
  x python -m recipes.assets.build_replication_data --out "$OUT/data" --install
  if [ ! -f "$OUT/teacher/model.safetensors" ]; then
    x ./run_train.sh --job.config_file train_configs/replication_teacher.toml --job.dump_folder "$OUT/teacher_run" \
      --training.dataset_path "$OUT/data/train.jsonl" --validation.dataset_path "$OUT/data/validation.jsonl"
    x python -m recipes.reports.export_hf --checkpoint "$OUT/teacher_run/checkpoint/step-1500" --flavor debug_teacher \
      --tokenizer assets/tokenizer --out "$OUT/teacher"
  fi
}

declare -A PLANNED=()  # runs already done or printed by this invocation

run() {  # run NAME CONFIG [extra args]: one student run into $OUT/NAME, skipped when it finished before
  local name=$1 config=$2 lock
  shift 2
  [ -z "${PLANNED[$name]:-}" ] || return 0
  PLANNED[$name]=1
  if [ "${DRY_RUN:-0}" = 1 ]; then
    grep -qs "Training completed" "$OUT/$name.log" ||
      echo "$TRAIN --job.config_file $config --job.dump_folder $OUT/$name $*"
    return 0
  fi
  mkdir -p "$(dirname "$OUT/$name")"
  # replicate.sh and study_init.sh share runs and may run side by side: the lock makes the second wait, then skip
  exec {lock}>"$OUT/$name.lock"
  flock "$lock"
  if ! grep -qs "Training completed" "$OUT/$name.log"; then
    if compgen -G "$OUT/$name/checkpoint/step-*/.metadata" > /dev/null; then
      # an interrupted run (the replication configs checkpoint every 100 steps): torchtitan resumes from its last
      # complete checkpoint, which reproduces the uninterrupted run; the log and TensorBoard events continue
      echo "[replication] $name: resuming from its last complete checkpoint"
    else
      rm -rf "${OUT:?}/$name"
      : > "$OUT/$name.log"
    fi
    $TRAIN --job.config_file "$config" --job.dump_folder "$OUT/$name" "$@" 2>&1 | tee -a "$OUT/$name.log"
  fi
  exec {lock}>&-
}
