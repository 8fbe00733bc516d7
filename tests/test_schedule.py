import math

import pytest

from let_components.schedule import teacher_weight


def test_linear_starts_at_lambda0_and_runs_exactly_stop_steps():
    weights = [teacher_weight(step, 0.1, 10, "linear") for step in range(1, 13)]
    assert weights[0] == pytest.approx(0.1)
    assert weights[9] == pytest.approx(0.1 * 1 / 10)  # step 10 = S_stop: last aligned step
    assert weights[10:] == [0.0, 0.0]
    assert sum(w > 0 for w in weights) == 10
    # (S - (step - 1)) / S, the paper's linear decay on 1-based steps
    assert weights[4] == pytest.approx(0.1 * (10 - 4) / 10)


def test_constant_is_lambda0_until_stop_then_zero():
    assert [teacher_weight(s, 0.3, 3, "constant") for s in (1, 2, 3, 4, 100)] == [0.3, 0.3, 0.3, 0.0, 0.0]


def test_cosine_halfway_is_half():
    assert teacher_weight(1, 1.0, 8, "cosine") == pytest.approx(1.0)
    assert teacher_weight(5, 1.0, 8, "cosine") == pytest.approx(0.5)
    assert teacher_weight(8, 1.0, 8, "cosine") == pytest.approx((1 + math.cos(math.pi * 7 / 8)) / 2)
    assert teacher_weight(9, 1.0, 8, "cosine") == 0.0


@pytest.mark.parametrize("schedule", ["linear", "constant", "cosine"])
def test_every_schedule_stays_in_0_lambda0_and_never_increases(schedule):
    weights = [teacher_weight(s, 0.3, 37, schedule) for s in range(1, 50)]
    assert all(0.0 <= w <= 0.3 for w in weights)
    assert all(later <= earlier for earlier, later in zip(weights, weights[1:], strict=False))
    assert weights[36] > 0.0 and weights[37] == 0.0  # step 37 = S_stop aligns, step 38 does not


def test_stop_step_zero_or_negative_means_no_alignment():
    assert teacher_weight(1, 0.1, 0, "linear") == 0.0
    assert teacher_weight(1, 0.1, -5, "constant") == 0.0


def test_unknown_schedule_names_the_key():
    with pytest.raises(ValueError, match="let.schedule='step'"):
        teacher_weight(1, 0.1, 10, "step")
