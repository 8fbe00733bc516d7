# Shared by recipes/replicate.sh and recipes/study_init.sh (sourced, not run): the replication's data and teacher,
# and one student run. OUT (env REPLICATION_OUT, default outputs/replication) is where everything goes; DRY_RUN=1 prints each command
# that would run instead of running it (finished runs are skipped either way).
OUT=${REPLICATION_OUT:-outputs/replication}

x() {  # x CMD...: run it, or print it under DRY_RUN=1
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "$*"; else "$@"; fi
}

prepare_replication() {  # the CPython-docs data and the replication teacher (exported once)
  x python -m recipes.build_replication_data --out "$OUT/data" --install
  if [ ! -f "$OUT/teacher/model.safetensors" ]; then
    x ./run_train.sh --job.config_file train_configs/replication_teacher.toml
    x python -m recipes.export_hf --checkpoint "$OUT/teacher_run/checkpoint/step-1500" --flavor debug_teacher \
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
      echo "./run_train.sh --job.config_file $config --job.dump_folder $OUT/$name $*"
    return 0
  fi
  mkdir -p "$(dirname "$OUT/$name")"
  # replicate.sh and study_init.sh share runs and may run side by side: the lock makes the second wait, then skip
  exec {lock}>"$OUT/$name.lock"
  flock "$lock"
  if ! grep -qs "Training completed" "$OUT/$name.log"; then
    rm -rf "${OUT:?}/$name"
    ./run_train.sh --job.config_file "$config" --job.dump_folder "$OUT/$name" "$@" 2>&1 | tee "$OUT/$name.log"
  fi
  exec {lock}>&-
}
