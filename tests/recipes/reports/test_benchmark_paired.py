"""The paired benchmark's statistics on synthetic block times whose truth is known, then one tiny real run.

The synthetic tests pin exact properties: the t quantile against published values, the palindromic order's
cancellation of a linear drift, a switching cost kept out of the parts by the trainer's clock, and the 95%
interval's coverage where it is exact (normal per-round noise). The
method on a real run (A = B, an injected cost) is checked by recipes/studies/gpu_checks.sh's DRY_RUN
(test_benchmark_gpu_checks.py), which runs those arms anyway.
"""

import itertools
import math
import random

import pytest

from recipes.reports.benchmark.arms import ARMS, BREAKDOWN, PART_NAMES, Arm, Plan
from recipes.reports.benchmark.paired import analyse, format_paired, ratio_change
from recipes.reports.benchmark.paired_stats import (
    arm_labels,
    compare,
    lead_in_extra_ms,
    palindrome_blocks,
    parts,
    round_times,
    rounds_needed,
    t_interval,
    t_quantile,
)


@pytest.mark.parametrize("p, df, value", [
    (0.975, 1, 12.706204736), (0.975, 4, 2.776445105), (0.975, 9, 2.262157163), (0.995, 30, 2.749995654),
    (0.9995, 3, 12.923978637), (0.975, 100_000, 1.959987708),
])
def test_t_quantile_matches_published_values(p, df, value):
    assert t_quantile(p, df) == pytest.approx(value, abs=1e-8)


def test_rounds_are_palindromes_so_every_arm_sits_at_the_same_mean_position():
    assert palindrome_blocks(2, 2) == [0, 1, 1, 0, 0, 1, 1, 0]
    blocks = palindrome_blocks(5, 1)
    positions = {arm: [i for i, a in enumerate(blocks) if a == arm] for arm in range(5)}
    assert {sum(p) / 2 for p in positions.values()} == {4.5}
    assert arm_labels(["plain", "plain", "let", "plain"]) == ["plain", "plain #2", "let", "plain #3"]


def test_breakdown_arms_add_one_piece_each_and_end_at_lets_own_step():
    fields = [name for name in Arm.__dataclass_fields__ if name != "extra_forward"]
    arms = [ARMS[name] for name in BREAKDOWN]
    assert not any(getattr(arms[0], f) for f in fields) and all(getattr(arms[-1], f) for f in fields)
    for before, after in itertools.pairwise(arms):
        switched = [f for f in fields if getattr(before, f) != getattr(after, f)]
        assert len(switched) == 1 and getattr(after, switched[0])
    assert ARMS["let"] == Arm() and set(PART_NAMES) == set(BREAKDOWN[1:])


def _blocks(arms: int, rounds: int, seconds, steps: int = 4) -> list[dict]:
    """Block records as the trainer writes them; seconds(round, arm, block_index) is per step."""
    order = palindrome_blocks(arms, rounds)
    return [{"block": i, "arm": arm, "seconds": steps * seconds(i // (2 * arms), arm, i), "steps": steps}
            for i, arm in enumerate(order)]


def test_a_drift_linear_over_the_run_cancels_exactly():
    base = [1.0, 1.1, 1.25]
    # multiplicative drift (the machine slows down by 3% per block): the ratios come out exact
    blocks = _blocks(3, 4, lambda r, arm, i: base[arm] * (1 + 0.03 * i))
    result = analyse(blocks, ["plain", "+teacher", "let"], warmup_rounds=0)
    for comparison, truth in zip(result["comparisons"], base[1:], strict=True):
        ratio = comparison["tokens_per_s_ratio"]
        assert ratio["mean"] == pytest.approx(1 / truth, rel=1e-12)
        assert ratio["high"] - ratio["low"] == pytest.approx(0, abs=1e-9)
    # additive drift (+5 ms per block): the differences come out exact
    blocks = _blocks(3, 4, lambda r, arm, i: base[arm] + 0.005 * i)
    result = analyse(blocks, ["plain", "+teacher", "let"], warmup_rounds=0)
    assert [c["extra_ms"]["mean"] for c in result["comparisons"]] == pytest.approx([100.0, 250.0])
    times = round_times(blocks, ["plain", "+teacher", "let"], warmup_rounds=0)
    assert [interval.mean for _, interval in parts(times)] == pytest.approx([100.0, 150.0])


SWITCH_S = 0.020
"""What entering an arm costs, once, in its first step."""
STEP_S = (0.100, 0.103, 0.113, 0.114, 0.120)
"""Each arm's true seconds per step: the parts are +3, +10, +1, +6 ms."""


def _clocked_blocks(plan: Plan, monkeypatch, seed: int = 0) -> list[dict]:
    """The trainer's BlockClock on simulated steps: arm's time, + SWITCH_S in the first step of a block whose arm
    differs from the block before's, + a linear drift (20 us per step) + normal noise (0.5 ms)."""
    from recipes.reports.benchmark import paired_trainer

    rng, now = random.Random(seed), [0.0]

    class SimulatedTime:
        perf_counter = process_time = staticmethod(lambda: now[0])

    monkeypatch.setattr(paired_trainer, "time", SimulatedTime)
    monkeypatch.setattr(paired_trainer, "synchronize", lambda: None)
    clock = paired_trainer.BlockClock(plan)
    for step in range(1, plan.steps + 1):
        block = plan.block_of(step)
        arm = plan.blocks[block]
        entered = (step - 1) % plan.block_steps == 0 and (block == 0 or plan.blocks[block - 1] != arm)
        clock.start(step)
        now[0] += STEP_S[arm] + SWITCH_S * entered + 2e-5 * step + rng.gauss(0, 5e-4)
        clock.stop(step)
    return clock.records


@pytest.mark.parametrize("arms", [3, 4, 5])
def test_a_switching_cost_stays_out_of_the_parts(arms, monkeypatch):
    """Middle arms are entered twice per round, end arms once: clocking every step (lead_in_steps=0, the old
    clock) put +-SWITCH_S / 8 into the first and last parts; with the block's first step unclocked (the plan
    run_paired writes) every 99.9% interval covers its truth. LET - plain (last - first) is right either way."""
    names, rounds = ["plain", "let", "plain+forward", "skeleton", "+teacher"][:arms], 10
    truth = [1000 * (b - a) for a, b in itertools.pairwise(STEP_S[:arms])]
    order = palindrome_blocks(arms, 1 + rounds)
    for lead_in in (1, 0):
        blocks = _clocked_blocks(Plan(names, order, 4, "unused", **({} if lead_in else {"lead_in_steps": 0})),
                                 monkeypatch)
        times = round_times(blocks, names, warmup_rounds=1)
        found = [interval for _, interval in parts(times, confidence=0.999)]
        covered = [i.low <= t <= i.high for i, t in zip(found, truth, strict=True)]
        headline = compare(times, arms - 1, confidence=0.999).extra_ms
        assert headline.low <= 1000 * (STEP_S[arms - 1] - STEP_S[0]) <= headline.high
        if lead_in:
            assert all(covered), [(i.low, i.high) for i in found]
            # what the unclocked first step shows: the switch, in the end arms' blocks half the time
            extra = lead_in_extra_ms(blocks, names, warmup_rounds=1)
            assert list(extra.values()) == pytest.approx([10.0] + [20.0] * (arms - 2) + [10.0], abs=1.0)
        else:
            assert covered[0] is covered[-1] is False and all(covered[1:-1])
            bias = [i.mean - t for i, t in zip(found, truth, strict=True)]
            assert (bias[0], bias[-1]) == pytest.approx((1000 * SWITCH_S / 8, -1000 * SWITCH_S / 8), abs=0.5)


def test_warmup_rounds_are_left_out():
    blocks = _blocks(2, 3, lambda r, arm, i: 9.0 if r == 0 else 1.0 + arm)
    times = round_times(blocks, ["plain", "let"], warmup_rounds=1)
    assert [t.per_round for t in times] == [[1.0, 1.0], [2.0, 2.0]]
    with pytest.raises(ValueError, match="whole number of rounds"):
        round_times(blocks[:-1], ["plain", "let"], warmup_rounds=0)


TRUE_SECONDS = (1.0, 1.08)  # plain, LET: the truth is a ratio of 1/1.08 and +80 ms per step


def _experiment(rng: random.Random, rounds: int, multiplicative: bool) -> dict:
    """One synthetic run: any drift between rounds, normal noise per arm and round (both blocks share it)."""
    drift = [rng.uniform(-0.5, 0.5) for _ in range(rounds)]
    noise = {(r, arm): rng.gauss(0, 0.05 if multiplicative else 0.004) for r in range(rounds) for arm in range(2)}
    if multiplicative:
        def seconds(r, arm, i):
            return TRUE_SECONDS[arm] * math.exp(drift[r] + noise[(r, arm)])
    else:
        def seconds(r, arm, i):
            return TRUE_SECONDS[arm] + 0.1 * drift[r] + noise[(r, arm)]
    return analyse(_blocks(2, rounds, seconds), ["plain", "let"], warmup_rounds=0)["comparisons"][0]


@pytest.mark.parametrize("key, truth, multiplicative", [
    ("tokens_per_s_ratio", 1 / 1.08, True), ("extra_ms", 80.0, False),
])
def test_the_95_percent_intervals_cover_the_truth_95_percent_of_the_time(key, truth, multiplicative):
    """Normal per-round noise (on the log scale for the ratio, additive for the milliseconds): there the t interval
    is exact, so over 2,000 runs of 5 rounds it covers 95% up to binomial noise (sd 0.0049; the bound is 3 sd).
    A normal quantile instead of t's would cover about 88%."""
    rng = random.Random(0)
    runs = [_experiment(rng, 5, multiplicative)[key] for _ in range(2000)]
    coverage = sum(run["low"] <= truth <= run["high"] for run in runs) / len(runs)
    assert abs(coverage - 0.95) < 0.0146, coverage


def test_rounds_needed_is_the_fewest_that_reach_the_half_width():
    sd, half = 0.02, math.log1p(0.005)
    n = rounds_needed(sd, half)
    assert t_quantile(0.975, n - 1) * sd / math.sqrt(n) <= half < t_quantile(0.975, n - 2) * sd / math.sqrt(n - 1)
    values = [0.0, 0.02, -0.02, 0.01]
    interval = t_interval(values)
    assert interval.mean == pytest.approx(0.0025)
    assert interval.high - interval.mean == pytest.approx(t_quantile(0.975, 3) * interval.sd / 2)


def test_the_breakdown_table_adds_the_named_parts_against_let_minus_plain():
    arms = ["plain", "skeleton", "+teacher", "+mapping", "+term", "+guard", "let"]
    extra = [0.0, 0.001, 0.010, 0.0, 0.004, 0.002, 0.0]  # seconds per step each arm adds
    blocks = _blocks(7, 3, lambda r, arm, i: 0.1 + sum(extra[:arm + 1]))
    report = {"label": "", "meta": {"device": "cpu", "torch": "t", "torchtitan": "0.2.2", "date": "d",
                                    "command": "", "load_average_1min": 0.0, "load_average_1min_after": 0.0,
                                    "wall_s": 1.0},
              "spec": {"arms": arms, "confidence": 0.95, "let_config": "x.toml", "extra_args": [],
                       "warmup_rounds": 0, "block_steps": 4},
              "tokens_per_step": 100, "blocks": blocks, **analyse(blocks, arms, warmup_rounds=0)}
    markdown = format_paired(report)
    assert [p["part"] for p in report["parts"]][1:] == [
        "teacher forward", "token mapping", "term forward + backward", "non-finite guard", "stop-rule check"]
    assert "| teacher forward (`+teacher`) | +10.00 (" in markdown
    assert "| **named parts (all but the bookkeeping)** | +16.00 | 94% |" in markdown
    assert "| **LET - plain (this run)** | +17.00 (" in markdown


def test_a_ratio_change_between_two_paired_runs_has_a_welch_interval():
    def report(ratio: float, sd: float, n: int) -> dict:
        return {"comparisons": [{"tokens_per_s_ratio": {"mean": ratio, "sd": sd, "n": n}}]}

    change = ratio_change(report(0.92, 0.01, 10), report(0.95, 0.01, 10))
    assert change.mean == pytest.approx(0.95 / 0.92)
    # equal spreads and sizes: Welch's degrees of freedom are 18, the standard error sqrt(2 * 0.01^2 / 10)
    half = t_quantile(0.975, 18) * math.sqrt(2e-5)
    assert (change.low, change.high) == pytest.approx((0.95 / 0.92 * math.exp(-half), 0.95 / 0.92 * math.exp(half)))
