"""recipes/reports/compare against hand computations, and `python -m recipes.reports.compare` end to end on synthetic
events.

The reference curves are linear in the step, so linear interpolation between evaluations is exact and every
expected number below can be checked by hand: the baseline is L(s) = 6 - 0.01 s (final loss 4.0 at step 200),
and the LET run is the same curve 1.6x faster, L(s) = 6 - 0.016 s, which reaches 4.0 at step 125.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from let_components.record import RUN_RECORD
from let_components.schedule import teacher_weight
from recipes.reports.compare.analysis import (
    RunMetrics,
    Stat,
    compare_runs,
    cumulative_seconds,
    first_crossing,
    infer_log_freq,
    interpolate,
    mean_curve,
    speedup,
    stop_step_from_lambda,
    summarize,
)
from recipes.reports.compare.report import _cell, markdown_table, teaching_phases
from tests.support import REPO

EVAL_STEPS = (1, 50, 100, 150, 200)
LOG_STEPS = (1, *range(10, 201, 10))
LOG_FREQ = 10
TOKENS_PER_STEP = 2048


def line(offset: float, slope: float) -> list[tuple[float, float]]:
    return [(s, offset - slope * s) for s in EVAL_STEPS]


def step_times(seconds_per_step) -> dict[int, float]:
    """time_metrics/end_to_end(s) as torchtitan logs it: each interval's time divided by log_freq."""
    times, previous = {}, 0
    for step in LOG_STEPS:
        times[step] = sum(seconds_per_step(s) for s in range(previous + 1, step + 1)) / LOG_FREQ
        previous = step
    return times


def baseline_seconds(step: int) -> float:
    return 1.0


def let_seconds(step: int) -> float:
    """The teacher makes each of the 40 alignment steps 25% slower."""
    return 1.25 if step <= 40 else 1.0


def run(name: str, validation, seconds_per_step=None, stop_step=None) -> RunMetrics:
    return RunMetrics(
        name=name,
        validation=validation,
        tokens=[(0.0, 0.0), *((s, s * TOKENS_PER_STEP) for s in LOG_STEPS)],
        seconds=cumulative_seconds(step_times(seconds_per_step), LOG_FREQ) if seconds_per_step else [],
        stop_step=stop_step,
    )


# ---- pure functions ---------------------------------------------------------------------------------------


def test_first_crossing_interpolates_linearly_between_evaluations():
    curve = [(0, 10.0), (100, 6.0), (200, 5.0)]
    assert first_crossing(curve, 5.5) == pytest.approx(150.0)  # 100 + (6 - 5.5) / (6 - 5) * 100
    assert first_crossing(curve, 6.0) == 100.0  # an evaluation exactly at the target
    assert first_crossing(curve, 12.0) == 0.0  # already below at the first evaluation
    assert first_crossing(curve, 4.9) is None


def test_first_crossing_takes_the_first_of_several():
    """A validation curve that goes back up: the first time the loss is reached counts."""
    curve = [(1, 8.0), (50, 6.0), (100, 5.0), (150, 5.4), (200, 5.2)]
    assert first_crossing(curve, 5.2) == pytest.approx(90.0)  # 50 + (6 - 5.2) / (6 - 5) * 50


def test_speedup_of_a_curve_shifted_by_1_6x():
    baseline, let = line(6.0, 0.01), line(6.0, 0.016)
    target = baseline[-1][1]
    assert target == pytest.approx(4.0)
    assert first_crossing(baseline, target) == pytest.approx(200.0)
    assert first_crossing(let, target) == pytest.approx(125.0)  # 100 + (4.4 - 4.0) / (4.4 - 3.6) * 50
    assert speedup(200.0, 125.0) == pytest.approx(1.6)
    assert speedup(200.0, None) is None


def test_interpolate_maps_steps_to_tokens_and_extends_the_last_segment():
    tokens = [(0.0, 0.0), (1, 2048.0), (10, 20480.0)]
    assert interpolate(tokens, 5.5) == pytest.approx(5.5 * 2048)
    assert interpolate(tokens, 15) == pytest.approx(15 * 2048)
    assert interpolate([], 3) is None


def test_cumulative_seconds_undoes_torchtitans_division_by_log_freq():
    # step 1 took 0.5 s, steps 2..10 took 2 s, steps 11..20 took 2 s; torchtitan logs each / log_freq
    points = cumulative_seconds({1: 0.05, 10: 0.2, 20: 0.2}, log_freq=10)
    steps, seconds = zip(*points, strict=True)
    assert steps == (0, 1, 10, 20)
    assert seconds == pytest.approx((0, 0.5, 2.5, 4.5))
    assert cumulative_seconds(step_times(let_seconds), LOG_FREQ)[-1][1] == pytest.approx(40 * 1.25 + 160)


def test_infer_log_freq_from_logged_steps():
    assert infer_log_freq([1, 10, 20, 30]) == 10
    assert infer_log_freq([1, 2, 3, 4]) == 1
    assert infer_log_freq([1]) == 1


@pytest.mark.parametrize(
    ("schedule", "stop_step", "steps", "expected"),
    [
        ("linear", 40, 200, 40),
        ("linear", 45, 200, 45),  # between two logs: pinned by the linear decay
        ("cosine", 45, 200, 45),
        ("constant", 37, 200, 30),  # a flat lambda only bounds it: the last logged aligned step
        ("linear", 1000, 200, 1000),  # the run ended during alignment
    ],
)
def test_stop_step_from_logged_lambda(schedule, stop_step, steps, expected):
    logged = [s for s in LOG_STEPS if s <= steps]
    # TensorBoard keeps float32
    lambdas = {s: float(np.float32(teacher_weight(s, 0.1, stop_step, schedule))) for s in logged}
    assert stop_step_from_lambda(lambdas) == expected


def test_stop_step_of_a_baseline_is_none():
    assert stop_step_from_lambda({}) is None
    assert stop_step_from_lambda({1: 0.0, 10: 0.0}) is None


def test_summarize_is_mean_and_sample_std_over_seeds_that_have_a_value():
    stat = summarize([1.5, 1.7, None])
    assert (stat.n, stat.of) == (2, 3)
    assert stat.mean == pytest.approx(1.6)
    assert stat.std == pytest.approx(math.sqrt(2 * 0.1**2 / 1))
    assert summarize([None]).mean is None


def test_mean_curve_uses_the_steps_every_seed_evaluated():
    curve = mean_curve([[(1, 8.0), (50, 6.0), (100, 5.0)], [(1, 9.0), (100, 4.0)]])
    assert curve == [(1, 8.5), (100, 4.5)]


# ---- the comparison ---------------------------------------------------------------------------------------


def test_compare_reports_step_token_and_wall_clock_speedup():
    baseline = [run("baseline", line(6.0, 0.01), baseline_seconds)]
    lets = {"let": [run("let", line(6.0, 0.016), let_seconds, stop_step=40)]}
    comparison = compare_runs(baseline, lets)
    target = comparison.target
    assert (target.loss, target.steps) == pytest.approx((4.0, 200.0))
    assert target.tokens == pytest.approx(200 * TOKENS_PER_STEP)
    assert target.seconds == pytest.approx(200.0)
    let = comparison.groups[1].runs[0]
    assert let.steps_to_target == pytest.approx(125.0)
    assert let.tokens_to_target == pytest.approx(125 * TOKENS_PER_STEP)
    assert let.seconds_to_target == pytest.approx(40 * 1.25 + 85 * 1.0)
    assert let.speedup == pytest.approx(1.6)
    assert let.wall_clock_speedup == pytest.approx(200 / 135)
    assert let.total_seconds == pytest.approx(40 * 1.25 + 160 * 1.0)  # the whole run, to step 200
    assert comparison.groups[0].runs[0].total_seconds == pytest.approx(200.0)
    let_row = next(r for r in markdown_table(comparison).splitlines() if r.startswith("| let"))
    assert let_row.endswith("| 210.0 s |")  # the wall-clock per run column
    assert let.final_loss == pytest.approx(2.8)
    assert let.loss_delta == pytest.approx(-1.2)
    assert let.perplexity == pytest.approx(math.exp(2.8))
    assert comparison.groups[0].runs[0].speedup == pytest.approx(1.0)


def test_compare_marks_a_run_that_never_reaches_the_baseline_loss():
    baseline = [run("baseline", line(6.0, 0.01))]
    weak = run("weak", line(6.0, 0.0095))  # final loss 4.1 > 4.0
    comparison = compare_runs(baseline, {"weak": [weak]})
    result = comparison.groups[1].runs[0]
    assert result.steps_to_target is None and result.speedup is None and result.tokens_to_target is None
    assert result.loss_delta == pytest.approx(0.1)
    row = next(r for r in markdown_table(comparison).splitlines() if r.startswith("| weak"))
    assert row.count("not reached") == 5  # steps, tokens, speedup, wall-clock, wall-clock speedup


def test_a_time_spread_reads_in_its_means_unit():
    assert _cell(Stat(1242.0, 150.2, 2, 2), "seconds", "n/a") == "20.7 min ± 2.5 min"
    assert _cell(Stat(300.0, 12.0, 2, 2), "seconds", "n/a") == "300.0 s ± 12.0 s"
    assert _cell(Stat(None, None, 0, 2), "seconds", "n/a") == "n/a"


def test_teaching_phases_per_group_for_the_plot():
    v = line(6.0, 0.01)
    runs = {"baseline": [run("b0", v), run("b1", v)], "RKD": [run("r0", v, stop_step=200)],
            "SALT": [run("s0", v, stop_step=40), run("s1", v, stop_step=40)], "LET": [run("l0", v, stop_step=40)]}
    assert teaching_phases(runs) == {"RKD": 200, "SALT": 40, "LET": 40}  # shaded to 40, RKD's dotted line at 200


def test_compare_over_seeds():
    # baseline seeds +-0.1 around L(s): the mean curve still ends at 4.0 on step 200; seed 0 ends at 4.1
    baseline = [run("b0", line(6.1, 0.01)), run("b1", line(5.9, 0.01))]
    # LET seeds +-0.08: 4.0 is crossed at 100 + 0.48 / 0.8 * 50 = 130 and 100 + 0.32 / 0.8 * 50 = 120
    lets = {"let": [run("l0", line(6.08, 0.016)), run("l1", line(5.92, 0.016))]}
    comparison = compare_runs(baseline, lets)
    assert comparison.target.loss == pytest.approx(4.0)
    assert comparison.target.steps == pytest.approx(200.0)
    base = comparison.groups[0].summary()
    assert (base["steps_to_target"].n, base["steps_to_target"].of) == (1, 2)
    assert base["steps_to_target"].mean == pytest.approx(190.0)  # 150 + (4.4 - 4.0) / (4.4 - 3.9) * 50
    let = comparison.groups[1].summary()
    speedups = [200 / 130, 200 / 120]
    assert let["speedup"].mean == pytest.approx(sum(speedups) / 2)
    assert let["speedup"].std == pytest.approx(abs(speedups[0] - speedups[1]) / math.sqrt(2))
    assert let["final_loss"].mean == pytest.approx(2.8)
    assert let["final_loss"].std == pytest.approx(0.16 / math.sqrt(2))
    # paired by position: l0 - b0 = 2.88 - 4.1, l1 - b1 = 2.72 - 3.9
    assert let["paired_delta"].mean == pytest.approx(-1.2)
    assert let["paired_delta"].std == pytest.approx(0.04 / math.sqrt(2))
    assert base["paired_delta"].mean is None
    table = markdown_table(comparison)
    assert "(1/2 reached)" in table
    assert "| let | l0 |" in table  # per-seed rows


def test_a_one_seed_group_is_paired_with_the_first_baseline_run_and_a_longer_one_with_none():
    baseline = [run("b0", line(6.1, 0.01)), run("b1", line(5.9, 0.01))]  # final 4.1 and 3.9
    others = {"screen": [run("s0", line(6.0, 0.01))], "many": [run(f"m{i}", line(6.0, 0.01)) for i in range(3)]}
    screen, many = compare_runs(baseline, others).groups[1:]
    assert screen.runs[0].paired_delta == pytest.approx(4.0 - 4.1)  # its own seed's baseline, not the mean's 0.0
    assert screen.runs[0].loss_delta == pytest.approx(0.0)
    assert [r.paired_delta for r in many.runs] == [None] * 3  # no position to pair the third run with


# ---- the CLI on TensorBoard events shaped like torchtitan's -----------------------------------------------


def write_dump_folder(folder: Path, validation, seconds_per_step, stop_step: int | None = None) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder / "tb" / "20260101-0000"))
    times = step_times(seconds_per_step)
    for step in LOG_STEPS:
        writer.add_scalar("loss_metrics/global_avg_loss", dict(validation).get(step, 5.0) + 0.1, step)
        writer.add_scalar("n_tokens_seen", step * TOKENS_PER_STEP, step)
        writer.add_scalar("time_metrics/end_to_end(s)", times[step], step)
        if stop_step is not None:
            writer.add_scalar("let/lambda", teacher_weight(step, 0.1, stop_step), step)
    for step, loss in validation:
        writer.add_scalar("validation_metrics/loss", loss, step)
    writer.close()
    return folder


def test_cli_compares_dump_folders_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    baseline = write_dump_folder(tmp_path / "baseline_debug", line(6.0, 0.01), baseline_seconds)
    let = write_dump_folder(tmp_path / "let_debug", line(6.0, 0.016), let_seconds, stop_step=40)
    weak = write_dump_folder(tmp_path / "weak", line(6.0, 0.0095), let_seconds, stop_step=40)
    out = tmp_path / "compare"
    result = subprocess.run(
        [sys.executable, "-m", "recipes.reports.compare", "--baseline", str(baseline), "--let", str(let),
         f"weak={weak}", "--out", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout
    assert "| let_debug | 1 | 1..40 |" in result.stdout
    report = json.loads((out / "compare.json").read_text())
    assert report["target"]["loss"] == pytest.approx(4.0, rel=1e-6)
    assert report["target"]["steps"] == pytest.approx(200.0)
    assert report["target"]["seconds"] == pytest.approx(200.0, rel=1e-5)
    groups = {group["name"]: group for group in report["groups"]}
    assert list(groups) == ["baseline", "let_debug", "weak"]
    let_run = groups["let_debug"]["runs"][0]
    assert let_run["stop_step"] == 40
    assert let_run["steps_to_target"] == pytest.approx(125.0, rel=1e-5)
    assert let_run["tokens_to_target"] == pytest.approx(125 * TOKENS_PER_STEP, rel=1e-5)
    assert let_run["speedup"] == pytest.approx(1.6, rel=1e-5)
    assert let_run["wall_clock_speedup"] == pytest.approx(200 / 135, rel=1e-5)
    assert groups["let_debug"]["summary"]["speedup"]["mean"] == pytest.approx(1.6, rel=1e-5)
    assert groups["weak"]["runs"][0]["speedup"] is None
    assert groups["baseline"]["runs"][0]["stop_step"] is None
    assert (out / "compare.md").read_text() in result.stdout
    assert (out / "compare.png").stat().st_size > 10_000


def test_read_run_takes_stop_step_from_the_run_record_over_the_logged_lambda(tmp_path):
    from recipes.reports.compare.runs import read_run

    folder = write_dump_folder(tmp_path / "let", line(6.0, 0.016), let_seconds, stop_step=40)
    assert read_run(folder).stop_step == 40  # a run from before the record: read off let/lambda
    # the constant schedule leaves lambda flat, so only the record can say 45 (logged every 10 steps)
    (folder / RUN_RECORD).write_text(json.dumps({"enable": True, "stop_step": 45, "schedule": "constant"}))
    assert read_run(folder).stop_step == 45
    (folder / RUN_RECORD).write_text(json.dumps({"enable": False, "stop_step": 45}))
    assert read_run(folder).stop_step is None
    # stop_when = "caught_up": the teaching phase ends at the decided step, before the cap
    decision = {"step": 30, "student_bits_per_byte": 2.1, "teacher_bits_per_byte": 2.2}
    (folder / RUN_RECORD).write_text(json.dumps({"enable": True, "stop_step": 45, "stop_decision": decision}))
    assert read_run(folder).stop_step == 30


def test_difference_curve_is_run_minus_baseline_mean_with_seed_spread():
    from recipes.reports.compare.report import difference_curve

    baseline = [RunMetrics("b0", line(6.0, 0.01)), RunMetrics("b1", line(6.2, 0.01))]  # mean 6.1 - 0.01 s
    runs = [RunMetrics("l0", line(6.0, 0.012)), RunMetrics("l1", line(6.0, 0.014))]
    curve = difference_curve(runs, baseline)
    assert [step for step, _, _ in curve] == list(EVAL_STEPS)
    for step, mean, std in curve:
        assert mean == pytest.approx(-0.1 - 0.003 * step)  # (6 - 0.013 s) - (6.1 - 0.01 s)
        assert std == pytest.approx(0.002 * step / math.sqrt(2))
    # paired by seed, as the table's paired Δ: l0 - b0 = -0.002 s, l1 - b1 = -0.2 - 0.004 s; a one-seed run - b0
    for step, mean, std in difference_curve(runs, baseline, paired=True):
        assert mean == pytest.approx(-0.1 - 0.003 * step)  # the same mean, a different spread
        assert std == pytest.approx((0.2 + 0.002 * step) / math.sqrt(2))
    assert [mean for _, mean, _ in difference_curve(runs[:1], baseline, paired=True)] == pytest.approx(
        [-0.002 * step for step in EVAL_STEPS])
