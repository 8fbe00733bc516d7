"""recipes/studies/gpu_checks.sh DRY_RUN=1 on the CPU: every check's command runs on the debug student, and the paired
check also runs the method's own checks. Loose on purpose (a shared machine): the same arm twice is not told apart by a
99.9% interval of wall times, and an extra student forward inside the step (about a fifth of a step) is found against
the plain arm it sits next to, in the process's CPU time. No assertion on a timing value beyond those."""

import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from recipes.reports.benchmark.paired_stats import palindrome_blocks, round_times, t_interval
from tests.support import REPO


def test_dry_run_runs_every_check_and_the_paired_method_checks_itself(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    env = {**os.environ, "DRY_RUN": "1", "REPEATS": "1", "WORK": str(work), "OUT": str(out), "PYTHONPATH": str(REPO),
           # the script calls `python`: the interpreter running the tests, activated or not
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "recipes/studies/gpu_checks.sh"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # what a device call returns: few files
    assert sorted(path.name for path in out.iterdir()) == ["gpu_checks.md", "logs.tar.gz"]
    summary = (out / "gpu_checks.md").read_text()
    assert "FAILED" not in summary
    assert "### Paired in one process: 1.4B-paired" in summary and "| plain+forward |" in summary
    assert "| term forward + backward (`+term`) |" in summary and "| **LET - plain (this run)** |" in summary
    assert "| LET | aligning (3-4) |" in summary  # the 7B configs, LET first then the baseline
    assert "7b LET: teaching finished after step 4: teacher released" in summary
    assert "skipped 1.4B-cudagraphs" in summary
    with tarfile.open(out / "logs.tar.gz") as logs:
        names = logs.getnames()
    for log in ("1.4B-paired/run/train.log", "1.4B-breakdown/paired.json", "7b/runs/let_1/train.log",
                "7b/runs/baseline_1/train.log"):
        assert f"./{log}" in names

    report = json.loads((work / "1.4B-paired" / "paired.json").read_text())
    arms = report["spec"]["arms"]
    assert arms == ["plain", "plain", "plain+forward", "let"]
    assert [block["arm"] for block in report["blocks"]] == palindrome_blocks(4, report["spec"]["rounds"])
    # each block's first step runs unclocked (switching arms) and is reported apart
    assert {(block["steps"], block["lead_in_steps"]) for block in report["blocks"]} == {(3, 1)}
    assert "Unclocked first step of a block (switching arms)" in summary
    plain, again, _, _ = round_times(report["blocks"], arms, warmup_rounds=0)
    same = t_interval([math.log(a / b) for a, b in zip(plain.per_round, again.per_round, strict=True)], 0.999)
    assert same.low <= 0 <= same.high
    # the process's CPU time: on a shared machine the wall time also measures the neighbours
    _, again, injected, _ = round_times(report["blocks"], arms, warmup_rounds=0, clock="cpu_seconds")
    found = t_interval([math.log(a / b) for a, b in zip(again.per_round, injected.per_round, strict=True)])
    assert found.high < 0  # tokens/s of the injected arm below its neighbour's, at 95%

    breakdown = json.loads((work / "1.4B-breakdown" / "paired.json").read_text())
    total = breakdown["comparisons"][-1]["extra_ms"]["mean"]
    assert sum(part["mean"] for part in breakdown["parts"]) == pytest.approx(total, abs=1e-6)
