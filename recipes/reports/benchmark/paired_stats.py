"""The statistics of the paired measurement: block order, per-round differences, t intervals (pure, no torch).

Arms run in blocks of steps, in palindromic rounds (two arms: A B B A; more: 0 1 2 2 1 0). Within a round every
arm's two blocks sit symmetrically about the round's centre, so a drift of the machine that is linear over the
round (clocks, other jobs ramping up) adds the same to every arm and cancels from each difference. The round is the
unit of the statistics: one difference per round, and a Student t interval over rounds (exact when the per-round
differences are normal, whatever the drift between rounds).

Entering an arm costs something once (caches, the allocator, another compiled graph), and with three or more arms
the order does not balance it: the middle arms are entered twice per round, the end arms once (the second k-1
block follows k-1, a round's first 0 the round before's last 0). Clocked, a 20 ms switch put +2.5 and -2.5 ms into
the two parts next to the ends (4-step blocks). So each block's first step runs unclocked (arms.Plan.lead_in_steps,
the trainer's BlockClock): the cost is left out for any arms and rounds, and the palindrome with its drift
cancellation stays. Not an order balanced for carry-over (Williams squares): with two blocks per arm, equal mean
positions force a palindrome, whose middle block follows its own arm, so no round this long is balanced; Williams
orders balance over k rounds (2k for odd k: 14 for the 7-arm breakdown, which the GPU check runs in 5), in between
the cost becomes a per-round pattern that widens the intervals (or biases them, over an incomplete square). What
the lead-in gives up: one step per block runs unmeasured, and a cost lasting past the first step stays unbalanced
as before - though the end arms (plain, the reference, and let) are treated alike, so LET/plain is balanced either
way; `lead_in_extra_ms` shows how large the switch is.
"""

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache

TARGET_HALF_WIDTH = 0.005
"""The resolution a LET/plain ratio should reach: +-0.5%."""


def palindrome_blocks(arms: int, rounds: int) -> list[int]:
    """The arm index of every block: `rounds` rounds of 0, 1, ..., arms-1, arms-1, ..., 1, 0."""
    if arms < 2 or rounds < 1:
        raise ValueError(f"arms={arms}, rounds={rounds}: need at least 2 arms and 1 round")
    one_round = list(range(arms)) + list(reversed(range(arms)))
    return one_round * rounds


# ---- Student's t ---------------------------------------------------------------------------------------------


def _t_density(x: float, df: int) -> float:
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b), by its continued fraction (modified Lentz; Numerical Recipes 6.4)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below its mean
        return 1.0 - _incomplete_beta(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return front * fraction


def t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + x * x))
    return 1 - tail if x >= 0 else tail


@lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t (p > 0.5), by Newton's method on `t_cdf` from the normal quantile (the t
    quantile is larger, and the cdf is concave there, so the steps rise monotonically); the standard library has
    no t."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"p={p}, df={df}: need 0.5 < p < 1 and df >= 1")
    x = statistics.NormalDist().inv_cdf(p)
    for _ in range(100):
        step = (p - t_cdf(x, df)) / _t_density(x, df)
        x += step
        if abs(step) < 1e-10 * x:
            break
    return x


# ---- intervals over rounds -----------------------------------------------------------------------------------


@dataclass
class Interval:
    """A mean over rounds with its two-sided t interval."""

    mean: float
    low: float
    high: float
    sd: float
    """Sample standard deviation of the per-round values."""
    n: int
    """Rounds."""


def t_interval(values: list[float], confidence: float = 0.95) -> Interval:
    """Mean and Student t interval of per-round values (at least 2)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"{n} round(s): an interval needs at least 2")
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, sd, n)


def rounds_needed(sd: float, half_width: float, confidence: float = 0.95, limit: int = 100_000) -> int:
    """The fewest rounds whose t interval of per-round values with standard deviation `sd` is within
    +-half_width (for a ratio: sd and half_width of its logarithm)."""
    if sd == 0:
        return 2
    normal = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    # the t quantile exceeds the normal one, so no n below the normal answer can do
    for n in range(max(2, math.ceil((normal * sd / half_width) ** 2)), limit):
        if t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) <= half_width:
            return n
    return limit


@dataclass
class ArmTimes:
    """One arm's seconds per step in each measured round (the mean of its two blocks)."""

    name: str
    per_round: list[float]


def arm_labels(arms: list[str]) -> list[str]:
    """Arm names made unique: a repeated arm (plain, plain: the A = B check) gets #2, #3, ..."""
    return [name if arms[:i].count(name) == 0 else f"{name} #{arms[:i].count(name) + 1}"
            for i, name in enumerate(arms)]


def round_times(blocks: list[dict], arm_names: list[str], warmup_rounds: int, clock: str = "seconds") -> list[ArmTimes]:
    """Seconds per step per arm and measured round, from the trainer's block records
    ({"block", "arm", "seconds", "steps"}: the clocked steps, in block order); the first `warmup_rounds` rounds are
    left out. Arms are named by `arm_labels`; `clock` is the record's key read ("seconds": wall, "cpu_seconds")."""
    times = [ArmTimes(name, []) for name in arm_labels(arm_names)]
    for measured in _measured_rounds(blocks, len(arm_names), warmup_rounds):
        seconds, steps = [0.0] * len(arm_names), [0] * len(arm_names)
        for block in measured:
            seconds[block["arm"]] += block[clock]
            steps[block["arm"]] += block["steps"]
        for arm, total in enumerate(seconds):
            times[arm].per_round.append(total / steps[arm])
    return times


def _measured_rounds(blocks: list[dict], arms: int, warmup_rounds: int) -> list[list[dict]]:
    per_round_blocks = 2 * arms
    if len(blocks) % per_round_blocks:
        raise ValueError(f"{len(blocks)} blocks is not a whole number of rounds of {per_round_blocks}")
    return [blocks[r * per_round_blocks:(r + 1) * per_round_blocks]
            for r in range(warmup_rounds, len(blocks) // per_round_blocks)]


def lead_in_extra_ms(blocks: list[dict], arm_names: list[str], warmup_rounds: int,
                     clock: str = "seconds") -> dict[str, float]:
    """Per arm: how much longer a block's unclocked first step took than its clocked ones, ms (mean over the
    measured blocks): the switching cost the clock leaves out. Empty for records without a lead-in."""
    extra: dict[int, list[float]] = {arm: [] for arm in range(len(arm_names))}
    for measured in _measured_rounds(blocks, len(arm_names), warmup_rounds):
        for block in measured:
            if block.get("lead_in_steps"):
                extra[block["arm"]].append(1000 * (block[f"lead_in_{clock}"] / block["lead_in_steps"]
                                                   - block[clock] / block["steps"]))
    if not all(extra.values()):
        return {}
    return {name: statistics.fmean(extra[arm]) for arm, name in enumerate(arm_labels(arm_names))}


@dataclass
class Comparison:
    """An arm against the reference arm (0): tokens/s ratio and extra milliseconds per step, over rounds."""

    name: str
    ms_per_step: float
    tokens_per_s_ratio: Interval
    """exp of the t interval of per-round log(reference time / arm time): LET/plain tokens/s for the LET arm."""
    extra_ms: Interval
    """Per-round (arm - reference) milliseconds per step."""
    rounds_for_target: int
    """Rounds (of this run's arms) for a ratio interval of +-TARGET_HALF_WIDTH."""


def compare(times: list[ArmTimes], arm: int, reference: int = 0, confidence: float = 0.95) -> Comparison:
    ref, this = times[reference].per_round, times[arm].per_round
    logs = [math.log(r / a) for r, a in zip(ref, this, strict=True)]
    log_interval = t_interval(logs, confidence)
    ratio = Interval(*(math.exp(v) for v in (log_interval.mean, log_interval.low, log_interval.high)),
                     log_interval.sd, log_interval.n)
    extra = t_interval([1000 * (a - r) for r, a in zip(ref, this, strict=True)], confidence)
    needed = rounds_needed(log_interval.sd, math.log1p(TARGET_HALF_WIDTH), confidence)
    return Comparison(times[arm].name, 1000 * statistics.fmean(this), ratio, extra, needed)


def parts(times: list[ArmTimes], confidence: float = 0.95) -> list[tuple[str, Interval]]:
    """Each arm minus the one before it, in ms per step: what the arm's added piece costs (cumulative arms)."""
    return [
        (times[i].name, t_interval([1000 * (b - a) for a, b in zip(times[i - 1].per_round, times[i].per_round,
                                                                     strict=True)], confidence))
        for i in range(1, len(times))
    ]
