"""The non-finite guard: a NaN/inf term or gradient of an aligned step ends the run, on every rank, before the
optimizer step and the step's checkpoint."""

import pytest
import torch

from let_components.config import LETConfigError
from let_components.guard import NonFiniteGuard
from tests.helpers import run_train

LET_DEBUG = "train_configs/let_debug.toml"
TINY = ("--validation.no-enable", "--metrics.log_freq", "1", "--training.seq_len", "64",
        "--training.local_batch_size", "2")


def _guard_with_grad(grad: torch.Tensor) -> tuple[NonFiniteGuard, list[torch.nn.Parameter]]:
    guard = NonFiniteGuard(torch.device("cpu"), "teacher/")
    parameter = torch.nn.Parameter(torch.zeros(3))
    parameter.grad = grad
    guard.start_step()
    return guard, [parameter]


def test_finite_step_passes_and_each_non_finite_term_is_named():
    guard, parameters = _guard_with_grad(torch.ones(3))
    guard.record(teacher_hidden=torch.ones(2, 4), ce_loss=torch.tensor(2.0), alignment_loss=torch.tensor(-0.1))
    guard.check(parameters, step=1, alignment_weight=0.1)
    guard.record(alignment_loss=torch.tensor(float("nan")), teacher_hidden=torch.tensor([1.0, float("inf")]))
    with pytest.raises(LETConfigError) as error:
        guard.check(parameters, step=7, alignment_weight=0.05)
    assert str(error.value).startswith(
        "non-finite teacher_hidden, alignment_loss at step 7 (lambda=0.05, let.teacher_path='teacher/'): "
        "stopped before the optimizer step"
    )
    guard.start_step()  # marks last one step
    guard.check(parameters, step=8, alignment_weight=0.05)


def test_non_finite_distillation_term_is_named():
    """signal = "logits": the KD term is guarded like the alignment term (the same one line)."""
    guard, parameters = _guard_with_grad(torch.ones(3))
    guard.record(teacher_hidden=torch.ones(2, 4), ce_loss=torch.tensor(2.0), distillation_loss=torch.tensor(0.3))
    guard.check(parameters, step=1, alignment_weight=0.5)
    guard.record(distillation_loss=torch.tensor(float("inf")))
    with pytest.raises(LETConfigError, match=r"^non-finite distillation_loss at step 2 \(lambda=0.5, "):
        guard.check(parameters, step=2, alignment_weight=0.5)


def test_non_finite_gradient_is_named_grad_norm():
    guard, parameters = _guard_with_grad(torch.tensor([0.0, float("inf"), 1.0]))
    with pytest.raises(LETConfigError, match="non-finite grad_norm at step 3"):
        guard.check(parameters, step=3, alignment_weight=0.1)


POISONED_ENTRY = '''
import torch.distributed as dist

from let_components.trainer import LETTrainer
from recipes.train import main


class PoisonedAlignment(LETTrainer):
    """Step 2's alignment term is NaN on the LAST rank only: every rank must stop, with the same line."""

    def __init__(self, job_config):
        super().__init__(job_config)
        alignment = self.alignment_loss_fn

        def poisoned(*args):
            value = alignment(*args)
            last_rank = dist.get_rank() == dist.get_world_size() - 1
            return value * float("nan") if self.step == 2 and last_rank else value

        self.alignment_loss_fn = poisoned


main(PoisonedAlignment)
'''


@pytest.mark.parametrize("ngpu", [1, 2])
def test_student_made_non_finite_mid_alignment_stops_at_that_step(tmp_path, ngpu):
    (tmp_path / "poisoned_train.py").write_text(POISONED_ENTRY)
    out = tmp_path / "out"
    result = run_train(
        "--job.config_file", LET_DEBUG, "--job.dump_folder", str(out), *TINY, "--training.steps", "4",
        "--let.stop_step", "3", "--checkpoint.enable", "--checkpoint.interval", "1",
        ngpu=ngpu, env={"TRAIN_FILE": "poisoned_train", "PYTHONPATH": str(tmp_path)}, timeout=300,
    )
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if "[LET] configuration error:" in line]
    assert len(errors) == 1, result.stdout[-4000:]
    # rank 0 (the logged rank) names the alignment term poisoned on the last rank: the ranks agreed
    assert "non-finite alignment_loss, grad_norm at step 2 (lambda=0.066667, let.teacher_path=" in errors[0]
    assert "step:  1" in result.stdout and "step:  2" not in result.stdout
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == ["step-1"]
