"""SIGTERM -> checkpoint -> clean stop (let_components/preemption.py): the save keeps torchtitan's checkpoint
policy, and the ranks agree on the step without a blocking collective per step."""

import os
import signal
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torchtitan.components.checkpoint import CheckpointManager
from torchtitan.config import Checkpoint as CheckpointConfig

from let_components.preemption import PreemptionFlag, save_for_requeue


class _State:
    """A Stateful stand-in for the optimizer, LR schedulers and train state."""

    def state_dict(self):
        return {"value": torch.ones(2)}

    def load_state_dict(self, state_dict):
        pass


@pytest.fixture
def single_process_group(tmp_path):
    """torchtitan's purge asks dist.get_rank(): one gloo rank."""
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _checkpointer(folder: Path, **config) -> CheckpointManager:
    checkpoint_config = CheckpointConfig(enable=True, folder="checkpoint", interval=10, **config)
    return CheckpointManager(
        dataloader=None, model_parts=[nn.Linear(2, 2)], optimizers=_State(), lr_schedulers=_State(),
        states={"train_state": _State()}, checkpoint_config=checkpoint_config, sd_adapter=None,
        base_folder=str(folder),
    )


def _steps(folder: Path) -> list[int]:
    return sorted(int(p.name.removeprefix("step-")) for p in (folder / "checkpoint").glob("step-*"))


def test_sigterm_save_purges_to_keep_latest_k(tmp_path, single_process_group):
    checkpointer = _checkpointer(tmp_path, keep_latest_k=2)
    for step in (10, 20):
        checkpointer.save(step)
    save_for_requeue(checkpointer, 23)
    checkpointer.close()  # joins the purge thread
    assert _steps(tmp_path) == [20, 23]
    assert (tmp_path / "checkpoint" / "step-23" / ".metadata").is_file()


def test_sigterm_save_writes_nothing_with_load_only(tmp_path, single_process_group):
    checkpointer = _checkpointer(tmp_path, load_only=True)
    save_for_requeue(checkpointer, 23)
    checkpointer.close()
    assert not (tmp_path / "checkpoint").exists()


def _rank(rank: int, store_path: str, results) -> None:
    dist.init_process_group("gloo", store=dist.FileStore(store_path, 2), rank=rank, world_size=2)
    flag = PreemptionFlag()
    agreed_at = None
    for call in range(1, 9):  # should_continue_training before step `call`
        if flag.agreed() and agreed_at is None:
            agreed_at = call
        if rank == 1 and call == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during step 4, on one rank only
    flag.finish()
    results[rank] = agreed_at
    dist.destroy_process_group()


def test_ranks_stop_on_the_same_step_one_step_after_the_signal(tmp_path):
    """The reduce started before step 5 carries rank 1's signal and is read before step 6: both ranks stop after
    step 5 (a blocking reduce would stop them after step 4)."""
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(str(tmp_path / "store"), results), nprocs=2, join=True)
    assert dict(results) == {0: 6, 1: 6}


def test_one_process_reads_its_own_flag_at_once():
    flag = PreemptionFlag()
    assert not flag.agreed()
    os.kill(os.getpid(), signal.SIGTERM)
    assert flag.agreed()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_a_dry_run_process_needs_no_side_group():
    """Under the fake backend one process stands for every rank: no gloo group (which that backend cannot make),
    and the flag is this process's own, read at once."""
    dist.init_process_group("fake", rank=0, world_size=8)
    try:
        flag = PreemptionFlag()
        assert flag._group is None and not flag.agreed()
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.agreed()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        dist.destroy_process_group()
