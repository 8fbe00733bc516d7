"""The non-finite guard: a NaN/inf term or gradient of a teaching step ends the run, on every rank, before the
optimizer step and the step's checkpoint."""

import re
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchtitan.distributed.utils as dist_utils
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Partial

from let_components.config import LETRuntimeError
from let_components.guard import NonFiniteGuard
from tests.support.runs import SHORT_RUN, TINY_BATCH, run_train

LET_DEBUG = "train_configs/let_debug.toml"


def _clipped_step(guard: NonFiniteGuard, grad: torch.Tensor) -> None:
    """A step's gradient, clipped as torchtitan's train_step clips it (through the function the guard taps)."""
    parameter = torch.nn.Parameter(torch.zeros(len(grad)))
    parameter.grad = grad
    dist_utils.clip_grad_norm_([parameter], max_norm=1.0, foreach=True)


def _guard(term: str = "alignment_loss") -> NonFiniteGuard:
    guard = NonFiniteGuard(torch.device("cpu"), "teacher/", term)
    guard.start_step()
    return guard


def test_finite_step_passes_and_each_non_finite_term_is_named():
    guard = _guard()
    guard.record(teacher_output=torch.ones(2, 4), ce_loss=torch.tensor(2.0), alignment_loss=torch.tensor(-0.1))
    _clipped_step(guard, torch.ones(3))
    guard.check(step=1, weight=0.1)
    guard.record(alignment_loss=torch.tensor(float("nan")), teacher_output=torch.tensor([1.0, float("inf")]))
    _clipped_step(guard, torch.ones(3))
    with pytest.raises(LETRuntimeError) as error:
        guard.check(step=7, weight=0.05)
    assert str(error.value).startswith(
        "non-finite teacher_output, alignment_loss at step 7 (lambda=0.05, let.teacher_path='teacher/'): "
        "stopped before the optimizer step"
    )
    guard.start_step()  # marks last one step
    _clipped_step(guard, torch.ones(3))
    guard.check(step=8, weight=0.05)


def test_non_finite_distillation_term_is_named():
    """signal = "logits": the KD term is guarded like the alignment term (the same one line, the term's name)."""
    guard = _guard("distillation_loss")
    guard.record(teacher_output=torch.ones(2, 4), ce_loss=torch.tensor(2.0), distillation_loss=torch.tensor(0.3))
    _clipped_step(guard, torch.ones(3))
    guard.check(step=1, weight=0.5)
    guard.record(distillation_loss=torch.tensor(float("inf")))
    _clipped_step(guard, torch.ones(3))
    with pytest.raises(LETRuntimeError, match=r"^non-finite distillation_loss at step 2 \(lambda=0.5, "):
        guard.check(step=2, weight=0.5)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_gradient_is_named_grad_norm(bad):
    guard = _guard()
    _clipped_step(guard, torch.tensor([0.0, bad, 1.0]))
    with pytest.raises(LETRuntimeError, match="non-finite grad_norm at step 3"):
        guard.check(step=3, weight=0.1)


def test_the_guard_reads_torchtitans_norm_instead_of_computing_a_second():
    """One total-norm pass per step, torchtitan's own (for clipping); the guard takes the result it returned."""
    guard = _guard()
    with mock.patch("torch.nn.utils.get_total_norm", wraps=torch.nn.utils.get_total_norm) as norms:
        _clipped_step(guard, torch.tensor([3.0, 4.0]))
        guard.check(step=1, weight=0.1)
    assert norms.call_count == 1
    with pytest.raises(RuntimeError, match="did not call clip_grad_norm_"):
        guard.check(step=2, weight=0.1)  # no clip this step: never judged finite by default


def _dtensor_rank(rank: int, store: str, lines) -> None:
    dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
    mesh = init_device_mesh("cpu", (2,))
    guard = _guard()
    # a CE under loss parallel: each rank's part of a sum, non-finite on rank 1 only
    ce = DTensor.from_local(torch.tensor(float("nan") if rank == 1 else 2.0), mesh, [Partial()])
    with mock.patch.object(DTensor, "full_tensor", side_effect=AssertionError("a collective per step")):
        guard.record(ce_loss=ce)
    _clipped_step(guard, torch.ones(3))
    try:
        guard.check(step=5, weight=0.1)
        lines[rank] = None
    except LETRuntimeError as error:
        lines[rank] = str(error)
    dist.destroy_process_group()


def test_a_dtensor_term_is_judged_by_its_local_part_and_every_rank_stops(tmp_path):
    """No collective to make a DTensor whole: its local part is marked, and `check`'s MAX over the ranks makes the
    rank whose part is non-finite stop every rank, with the same line."""
    lines = mp.Manager().dict()
    mp.spawn(_dtensor_rank, args=(str(tmp_path / "store"), lines), nprocs=2, join=True)
    assert lines[0] == lines[1]
    assert lines[0].startswith("non-finite ce_loss at step 5 (lambda=0.1, ")


POISONED_ENTRY = '''
import torch.distributed as dist

from let_components.trainer import LETTrainer
from recipes.train import main


class PoisonedAlignment(LETTrainer):
    """Step 2's alignment term is NaN on the LAST rank only: every rank must stop, with the same line."""

    def __init__(self, job_config):
        super().__init__(job_config)
        sums = self.term.sums

        def poisoned(*args):
            value = sums(*args)
            last_rank = dist.get_rank() == dist.get_world_size() - 1
            return value * float("nan") if self.step == 2 and last_rank else value

        self.term.sums = poisoned


main(PoisonedAlignment)
'''


@pytest.mark.parametrize("ngpu", [1, 2])
def test_student_made_non_finite_mid_alignment_stops_at_that_step(tmp_path, ngpu):
    (tmp_path / "poisoned_train.py").write_text(POISONED_ENTRY)
    out = tmp_path / "out"
    result = run_train(
        "--job.config_file", LET_DEBUG, "--job.dump_folder", str(out), *SHORT_RUN, *TINY_BATCH, "--training.steps", "4",
        "--let.stop_step", "3", "--checkpoint.enable", "--checkpoint.interval", "1",
        ngpu=ngpu, env={"TRAIN_FILE": "poisoned_train", "PYTHONPATH": str(tmp_path)}, timeout=300,
    )
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if "[LET] training stopped:" in line]
    assert len(errors) == 1, result.stdout[-4000:]
    # every rank's trainer raises LETRuntimeError (its own status 3; torchrun then exits 1). Once the first rank has
    # exited, torchrun SIGTERMs the rest: a rank still on its way out then shows -15 (seen on an idle machine), never
    # another status and never a hang in a collective (the timeout)
    codes = re.findall(r"exitcode\s+: (-?\d+)", result.stdout)
    assert str(LETRuntimeError.exit_code) in codes and len(codes) <= ngpu, result.stdout[-3000:]
    assert set(codes) <= {str(LETRuntimeError.exit_code), "-15"}, result.stdout[-3000:]
    # rank 0 (the logged rank) names the alignment term poisoned on the last rank: the ranks agreed
    assert "non-finite alignment_loss, grad_norm at step 2 (lambda=0.066667, let.teacher_path=" in errors[0]
    assert "step:  1" in result.stdout and "step:  2" not in result.stdout
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == ["step-1"]
