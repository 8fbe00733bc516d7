"""recipes/studies/study_why.sh is hours of CPU training from a pinned worktree: here its syntax and, through DRY_RUN=1,
that every command it would run parses and that the pairs differ only where the study means them to."""

import dataclasses
import os
import re
import shlex
import subprocess

from recipes.probes.knowledge_probe import parse as parse_probe
from recipes.reports.paired_by_seed import RESULT_NAME
from tests.support import REPO
from tests.support.config import parse_config


def _dry_run(tmp_path, **env) -> subprocess.CompletedProcess:
    run_env = {**os.environ, "DRY_RUN": "1", "REPLICATION_OUT": str(tmp_path), "WORKTREE": str(tmp_path / "wt"),
               **env}
    return subprocess.run(["bash", "recipes/studies/study_why.sh"], cwd=REPO, env=run_env, capture_output=True,
                          text=True)


def _let_and_rest(job_config) -> tuple[dict, dict]:
    """([let] as a dict, every other section as dicts) without the keys that name the run."""
    sections = dataclasses.asdict(job_config)  # by value: the parser builds its dataclass types per call
    for key in ("config_file", "dump_folder", "description"):
        sections["job"].pop(key)
    return sections.pop("let"), sections


def test_study_why_is_valid_bash():
    subprocess.run(["bash", "-n", str(REPO / "recipes" / "studies" / "study_why.sh")], check=True)


def test_dry_run_plans_the_pinned_worktree_the_six_runs_and_every_measurement(tmp_path):
    run = _dry_run(tmp_path)
    assert run.returncode == 0, run.stderr
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    lines = [shlex.split(line) for line in run.stdout.splitlines()]
    assert lines[0] == ["git", "worktree", "add", "--detach", str(tmp_path / "wt"), head]
    trains = {cmd[cmd.index("--job.dump_folder") + 1].removeprefix(f"{tmp_path}/"): parse_config(None, *cmd[1:])
              for cmd in lines if cmd[0] == "./run_train.sh"}
    assert trains.pop("teacher_run").validation.dataset_path == f"{tmp_path}/data/validation.jsonl"
    assert sorted(trains) == ["baseline_s0", "baseline_s1", "let_s0", "let_s1", "why/let_whole_s0", "why/let_whole_s1"]
    for name, job_config in trains.items():
        assert job_config.debug.seed == int(name[-1]) and job_config.checkpoint.interval == 100
        assert job_config.let.teacher_path == f"{tmp_path}/teacher"
        assert job_config.training.dataset_path == f"{tmp_path}/data/train.jsonl"
        assert job_config.validation.dataset_path == f"{tmp_path}/data/validation.jsonl"
    for seed in (0, 1):
        base, let, whole = (_let_and_rest(trains[n]) for n in (f"baseline_s{seed}", f"let_s{seed}",
                                                               f"why/let_whole_s{seed}"))
        assert base[1] == let[1] == whole[1]  # nothing outside [let] differs
        assert (base[0]["enable"], let[0]["enable"], whole[0]["enable"]) == (False, True, True)
        assert (let[0]["stop_step"], whole[0]["stop_step"]) == (100, 500)
        assert {k for k in let[0] if let[0][k] != whole[0][k]} == {"stop_step"}
        assert {k for k in let[0] if let[0][k] != base[0][k]} == {"enable"}
    removed = {cmd[2] for cmd in lines if cmd[:2] == ["rm", "-rf"]}
    assert removed == {f"{tmp_path}/{name}/checkpoint/step-{s}" for name in trains for s in (200, 300, 400)}
    probes = [cmd[3:] for cmd in lines if cmd[:3] == ["python", "-m", "recipes.probes.knowledge_probe"]]
    assert len(probes) == 6 * 2
    for cmd in probes:  # each result is named for paired_by_seed after the checkpoint it measured
        json_path, checkpoint = cmd[cmd.index("--json") + 1], cmd[cmd.index("--checkpoint") + 1]
        name = RESULT_NAME.fullmatch(json_path.rsplit("/", 1)[1])
        assert name and json_path.startswith(f"{tmp_path}/why/probe/")
        assert checkpoint.endswith(f"{name['run']}_s{name['seed']}/checkpoint/step-{name['step']}")
    args, job_config = parse_probe(probes[-1])  # parses as the probe's own CLI
    assert job_config.let.teacher_path == f"{tmp_path}/teacher" and args.sequences == 128
    assert job_config.validation.dataset_path == f"{tmp_path}/data/validation.jsonl"
    evaluations = [cmd for cmd in lines if cmd[:3] == ["python", "-m", "recipes.probes.bits_per_byte"]]
    students = [cmd for cmd in evaluations if "--checkpoint" in cmd]
    assert len(evaluations) == 2 + len(students) and len(students) == 6 * 2  # teacher + six runs, on both texts
    assert all(cmd[cmd.index("--checkpoint") + 1].endswith("/checkpoint/step-500") for cmd in students)
    ood = [cmd for cmd in students if cmd[cmd.index("--data") + 1] == f"{tmp_path}/ood/ood.jsonl"]
    assert sorted(cmd[cmd.index("--json") + 1].rsplit("/", 1)[1] for cmd in ood) == sorted(
        f"{variant}_s{seed}.json" for variant in ("baseline", "let", "let_whole") for seed in (0, 1))
    assert ["python", "-m", "recipes.assets.build_ood_data", "--out", f"{tmp_path}/ood", "--download"] in lines
    # the readings, last: validation loss paired by seed, then the fixed thresholds
    assert lines[-4][:3] == ["python", "-m", "recipes.reports.compare"]
    assert f"whole-run={tmp_path}/why/let_whole_s0,{tmp_path}/why/let_whole_s1" in lines[-4]
    readings = [(cmd[cmd.index("--results") + 1].rsplit("/", 1)[1], cmd[cmd.index("--key") + 1],
                 float(cmd[cmd.index("--threshold") + 1])) for cmd in lines[-3:]]
    assert readings == [("ood", "nats_per_token", -0.02), ("in_domain", "nats_per_token", -0.02),
                        ("probe", "mapped_bits_per_byte", -0.05)]


def test_finished_work_is_not_planned_again_and_fortunes_may_come_from_a_folder(tmp_path):
    (tmp_path / "why").mkdir()
    (tmp_path / "why" / "let_whole_s1.log").write_text("... Training completed\n")
    (tmp_path / "why" / "probe").mkdir()
    (tmp_path / "why" / "probe" / "let_s0_step100.json").write_text("{}")
    run = _dry_run(tmp_path, FORTUNES="/somewhere/fortunes")
    assert run.returncode == 0, run.stderr
    assert f"--job.dump_folder {tmp_path}/why/let_whole_s1 " not in run.stdout
    assert f"--job.dump_folder {tmp_path}/why/let_whole_s0 " in run.stdout
    assert "let_whole_s1/checkpoint/step-200" not in run.stdout  # finished: nothing to prune in a dry run
    assert "probe/let_s0_step100.json" not in run.stdout and "probe/let_s0_step500.json" in run.stdout
    assert "--fortunes /somewhere/fortunes" in run.stdout and "--download" not in run.stdout


def test_an_existing_worktree_pinned_elsewhere_refuses_another_pin(tmp_path):
    worktree = tmp_path / "wt"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(worktree)]
    subprocess.run(["git", "init", "-q", str(worktree)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "elsewhere"], check=True)
    run = _dry_run(tmp_path, PIN="HEAD")
    assert run.returncode == 2 and re.search(r"PIN=HEAD: WORKTREE=.*/wt is pinned at [0-9a-f]{40}", run.stdout)
    assert "run_train.sh" not in run.stdout


def test_wide_plans_a_wider_student_paired_with_its_own_baselines(tmp_path):
    run = _dry_run(tmp_path, WIDE="1")
    assert run.returncode == 0, run.stderr
    lines = [shlex.split(line) for line in run.stdout.splitlines()]
    trains = {cmd[cmd.index("--job.dump_folder") + 1].removeprefix(f"{tmp_path}/"): parse_config(None, *cmd[1:])
              for cmd in lines if cmd[0] == "./run_train.sh" and "--job.dump_folder" in cmd}
    wide = {name: job for name, job in trains.items() if name.startswith("why/wide/")}
    assert sorted(wide) == ["why/wide/baseline_s0", "why/wide/baseline_s1", "why/wide/let_s0", "why/wide/let_s1"]
    assert {job.model.flavor for job in wide.values()} == {"debugwide"}
    for seed in (0, 1):
        base, let = (_let_and_rest(wide[f"why/wide/{n}_s{seed}"]) for n in ("baseline", "let"))
        narrow = _let_and_rest(trains[f"let_s{seed}"])
        assert base[1] == let[1] and {k for k in let[0] if let[0][k] != base[0][k]} == {"enable"}
        assert {section for section in let[1] if let[1][section] != narrow[1][section]} == {"model"}
    compares = [cmd for cmd in lines if cmd[:3] == ["python", "-m", "recipes.reports.compare"]]
    assert compares[-1][compares[-1].index("--baseline") + 1].endswith("why/wide/baseline_s0")
    assert any(cmd[:3] == ["python", "-m", "recipes.probes.init_probe"] and "debugwide" in cmd for cmd in lines)
