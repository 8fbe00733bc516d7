"""recipes/studies/study_init.sh is hours of CPU training: here only its syntax and, through DRY_RUN=1, that every
command it would run parses (run_train.sh overrides with torchtitan's parser, similarity calls with their own
parser)."""

import os
import shlex
import subprocess

from recipes.probes.similarity import parse
from tests.support import REPO
from tests.support.config import parse_config


def _dry_run(tmp_path, **env) -> subprocess.CompletedProcess:
    run_env = {**os.environ, "DRY_RUN": "1", "REPLICATION_OUT": str(tmp_path), **env}
    return subprocess.run(["bash", "recipes/studies/study_init.sh"], cwd=REPO, env=run_env, capture_output=True,
                          text=True)


def test_study_scripts_are_valid_bash():
    for script in ("study_init.sh", "study_caught_up.sh", "replicate.sh", "replicate_smollm2.sh",
                   "replication_setup.sh"):
        subprocess.run(["bash", "-n", str(REPO / "recipes" / "studies" / script)], check=True)


def test_dry_run_pairs_every_variant_with_its_own_baseline_and_every_command_parses(tmp_path):
    run = _dry_run(tmp_path)
    assert run.returncode == 0, run.stderr
    lines = [shlex.split(line) for line in run.stdout.splitlines()]
    trains = {cmd[cmd.index("--job.dump_folder") + 1].rsplit("/", 1)[1]: cmd[1:] for cmd in lines
              if cmd[0] == "./run_train.sh" and "train_configs/replication_teacher.toml" not in cmd}
    teacher = next(cmd for cmd in lines if "train_configs/replication_teacher.toml" in cmd)
    assert teacher[teacher.index("--job.dump_folder") + 1] == f"{tmp_path}/teacher_run"  # OUT's teacher, OUT's data
    assert teacher[teacher.index("--training.dataset_path") + 1] == f"{tmp_path}/data/train.jsonl"
    # stage 1: both baselines and the five variants at seed 0; stage 2 (SEEDS2_VARIANTS="hf lambda0.3", and paper): seed
    # 1. The paper variant's runs are the replication's own (shared with replicate.sh), the others the study's
    assert sorted(trains) == sorted([
        "baseline_s0", "baseline_hf_s0", "let_s0", "let_hf_s0", "let_linear_s0", "let_stop250_s0",
        "let_lambda0.3_s0", "baseline_s1", "let_s1", "baseline_hf_s1", "let_hf_s1", "let_lambda0.3_s1",
    ])
    folders = {name: args[args.index("--job.dump_folder") + 1] for name, args in trains.items()}
    assert folders["let_s0"] == f"{tmp_path}/let_s0" and folders["let_hf_s0"] == f"{tmp_path}/init_study/let_hf_s0"
    for name, args in trains.items():
        job_config = parse_config(None, *args)
        assert job_config.student.init == ("hf" if "hf" in name else "torchtitan")
        assert job_config.let.enable == name.startswith("let_")
        assert job_config.checkpoint.enable and job_config.checkpoint.interval == 100
        assert job_config.debug.seed == int(name[-1])
    assert parse_config(None, *trains["let_stop250_s0"]).let.stop_step == 250
    assert parse_config(None, *trains["let_lambda0.3_s0"]).let.lambda_0 == 0.3
    assert parse_config(None, *trains["let_linear_s0"]).let.projection == "linear"
    similarity = ["python", "-m", "recipes.probes.similarity"]
    similarities = [cmd[3:] for cmd in lines if cmd[:4] == [*similarity, "--checkpoint"]]
    assert lines[-1][:4] == [*similarity, "--summary"]  # then one table of them all
    assert len(similarities) == 12 * 5  # every run at steps 100..500
    args, job_config = parse(similarities[0])
    assert args.json.name == "baseline_hf_s0_step100.json" and job_config.let.teacher_path == f"{tmp_path}/teacher"
    paper = next(cmd for cmd in similarities if cmd[-1].endswith("let_paper_s1_step500.json"))
    assert paper[1] == f"{tmp_path}/let_s1/checkpoint/step-500"
    compares = [cmd for cmd in lines if cmd[:3] == ["python", "-m", "recipes.reports.compare"]]
    groups = {cmd[-1].rsplit("/", 1)[1]: (cmd[cmd.index("--baseline") + 1:cmd.index("--let")],
                                          cmd[cmd.index("--let") + 1:cmd.index("--out")]) for cmd in compares}
    assert sorted(groups) == ["compare_vs_baseline", "compare_vs_baseline_hf"]  # one per baseline, paired by seed
    study = f"{tmp_path}/init_study"
    assert groups["compare_vs_baseline_hf"] == (
        [f"{study}/baseline_hf_s0", f"{study}/baseline_hf_s1"], [f"hf={study}/let_hf_s0,{study}/let_hf_s1"])
    assert groups["compare_vs_baseline"] == ([f"{tmp_path}/baseline_s0", f"{tmp_path}/baseline_s1"], [
        f"linear={study}/let_linear_s0", f"stop250={study}/let_stop250_s0",
        f"lambda0.3={study}/let_lambda0.3_s0,{study}/let_lambda0.3_s1", f"paper={tmp_path}/let_s0,{tmp_path}/let_s1"])

def test_a_finished_run_is_not_planned_again(tmp_path):
    (tmp_path / "init_study").mkdir()
    (tmp_path / "init_study" / "let_hf_s0.log").write_text("... Training completed\n")
    run = _dry_run(tmp_path)
    assert "init_study/let_hf_s0 " not in run.stdout and "init_study/baseline_hf_s0 " in run.stdout


def test_an_unknown_second_stage_variant_stops_before_any_run(tmp_path):
    run = _dry_run(tmp_path, SEEDS2_VARIANTS="hf lambda3")
    assert run.returncode == 2 and "unknown variant 'lambda3'" in run.stdout
    assert "run_train.sh" not in run.stdout


def test_caught_up_study_differs_from_its_fixed_pair_only_in_the_stop_rule(tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "REPLICATION_OUT": str(tmp_path), "SEEDS": "1"}
    run = subprocess.run(["bash", "recipes/studies/study_caught_up.sh"], cwd=REPO, env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    lines = [shlex.split(line) for line in run.stdout.splitlines()]
    trains = {cmd[cmd.index("--job.dump_folder") + 1].removeprefix(f"{tmp_path}/"): parse_config(None, *cmd[1:])
              for cmd in lines if cmd[0] == "./run_train.sh" and "train_configs/replication_teacher.toml" not in cmd}
    assert sorted(trains) == ["baseline_s1", "caught_up/caught_up_s1", "caught_up/fixed_s1"]
    fixed, caught_up = trains["caught_up/fixed_s1"].let, trains["caught_up/caught_up_s1"].let
    assert fixed.teacher_path == caught_up.teacher_path == f"{tmp_path}/teacher_step100"
    assert (fixed.stop_when, caught_up.stop_when) == ("step", "caught_up")
    assert fixed.stop_step == caught_up.stop_step == 100 and fixed.lambda_0 == caught_up.lambda_0 == 0.1
    assert lines[-1][:3] == ["python", "-m", "recipes.reports.compare"]
    assert f"caught-up={tmp_path}/caught_up/caught_up_s1" in lines[-1]


FAKE_TRAIN = """#!/usr/bin/bash
# stand-in for run_train.sh: the first call dies after its step-100 checkpoint, the second completes
dump=${@: -1}
echo "args: $*"
if [ ! -d "$dump/checkpoint/step-100" ]; then
  mkdir -p "$dump/checkpoint/step-100" && touch "$dump/checkpoint/step-100/.metadata"
  echo "step: 100"; exit 137
fi
echo "Training completed"
"""


def _run_once(tmp_path, name: str) -> subprocess.CompletedProcess:
    script = (f"set -euo pipefail; source recipes/studies/replication_setup.sh; "
              f"run {name} a.toml --job.dump_folder $OUT/{name}")
    env = {**os.environ, "REPLICATION_OUT": str(tmp_path), "REPLICATION_TRAIN": str(tmp_path / "train.sh")}
    return subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True)


def test_an_interrupted_run_resumes_from_its_checkpoint_and_a_finished_one_is_skipped(tmp_path):
    (tmp_path / "train.sh").write_text(FAKE_TRAIN)
    (tmp_path / "train.sh").chmod(0o755)
    assert _run_once(tmp_path, "r").returncode == 137  # killed: the step-100 checkpoint stays
    (tmp_path / "r" / "note").write_text("kept")
    resumed = _run_once(tmp_path, "r")
    assert resumed.returncode == 0 and "r: resuming from its last complete checkpoint" in resumed.stdout
    assert (tmp_path / "r" / "note").exists()  # the folder was not wiped
    log = (tmp_path / "r.log").read_text()
    assert log.count("args:") == 2 and "step: 100" in log and log.endswith("Training completed\n")
    assert _run_once(tmp_path, "r").stdout == ""  # finished: not run again
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "stale").write_text("no checkpoint")
    (tmp_path / "s.log").write_text("an old failed attempt\n")
    _run_once(tmp_path, "s")  # no checkpoint: a fresh start, folder and log reset
    assert not (tmp_path / "s" / "stale").exists() and "old failed" not in (tmp_path / "s.log").read_text()
