"""recipes/dry_run.py: rank 0's memory measured beside the estimate, and local_tensor refused where it cannot fit."""

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor

import recipes.dry_run as dry_run_recipe
from let_components.config import LETConfigError
from recipes.dry_run import Measured, check_local_tensor_fits, estimate, format_report, storage_gib
from recipes.probes.memory import MemoryItem, MemorySetup
from tests.support.config import parse_config

FAKE = ("--comm.mode", "fake_backend")


def test_storage_counts_rank_0s_shard_once(monkeypatch):
    monkeypatch.setenv("NGPU", "4")
    dist.init_process_group("fake", rank=0, world_size=4)
    try:
        mesh = init_device_mesh("cpu", (4,))
        shard = distribute_tensor(torch.zeros(1024, 256), mesh, [Shard(0)])
        dense = torch.zeros(256, 256)
        assert storage_gib([shard, dense, dense[:8], None]) * 2**30 == (256 * 256 + 256 * 256) * 4
    finally:
        dist.destroy_process_group()


def test_the_report_sets_each_measured_shard_beside_its_estimate(tmp_path):
    job_config = parse_config("train_configs/let_1.4b.toml", "--job.dump_folder", str(tmp_path), *FAKE,
                              "--training.seq_len", "32")  # the estimate is for the file's own 2048
    estimated = estimate(job_config, 8, signal="hidden")
    items, setup, batch = estimated
    assert (setup.gpus, setup.seq_len, batch) == (8, 2048, 4)
    gib = {item.name: item.gib[batch] for item in items}
    weights = gib["student fp32 master weights, sharded"]
    line = format_report(Measured(weights, weights, 2 * weights, 0.5, "float32"), estimated, step=1)
    assert f"student weights {weights:.2f} GiB ({weights:.2f} GiB)" in line
    assert f"AdamW state {2 * weights:.2f} GiB ({2 * weights:.2f} GiB)" in line
    assert "teacher 0.50 GiB float32 (0.25 GiB bf16)" in line  # SmolLM-135M: 135M parameters
    assert "estimate for 8 GPUs, seq_len 2048, local batch 4" in line and "headroom on an 80 GB card" in line


def test_a_baseline_has_no_teacher_rows_and_an_estimate_over_the_card_says_by_how_much():
    items = [MemoryItem("student fp32 master weights, sharded", "", {1: 60.0}), MemoryItem("activations", "",
                                                                                          {1: 40.0})]
    line = format_report(Measured(60.0, 0, 0, None), (items, MemorySetup(), 1), step=1)
    assert "teacher" not in line and "100.0 GiB per GPU: 20.9 GiB over on an 80 GB card" in line


def test_a_config_without_an_estimate_still_reports_what_was_measured(tmp_path):
    job_config = parse_config("train_configs/let_deepseek_v3_debug.toml", "--job.dump_folder", str(tmp_path), *FAKE)
    estimated = estimate(job_config, 2, signal="hidden")
    line = format_report(Measured(0.5, 0.5, 1.0, None), estimated, step=1)
    assert "student weights 0.50 GiB" in line and "no estimate" in line and "dense students" in line


def test_local_tensor_is_refused_where_every_ranks_shard_cannot_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(dry_run_recipe, "_available_gib", lambda: 20.0)
    job_config = parse_config("train_configs/let_7b.toml", "--job.dump_folder", str(tmp_path), "--comm.mode",
                              "local_tensor")
    with pytest.raises(LETConfigError, match=r"comm\.mode='local_tensor': this process would hold all 32 ranks' "
                                             r"shards, 28\.\d GiB of fp32 weights of let_llama 7B alone"):
        check_local_tensor_fits(job_config, 32)
    debug = parse_config("train_configs/let_debug.toml", "--job.dump_folder", str(tmp_path), "--comm.mode",
                         "local_tensor")
    check_local_tensor_fits(debug, 2)


def test_a_tensor_parallel_layout_points_at_the_per_stage_estimate(tmp_path):
    job_config = parse_config("train_configs/let_7b.toml", "--job.dump_folder", str(tmp_path), *FAKE,
                              "--parallelism.tensor_parallel_degree", "2")
    assert estimate(job_config, 32, signal="hidden") == (
        "no estimate here for TP 2 x PP 1 (python -m recipes.probes.memory --tp 2 --pp 1)")


def test_a_term_the_estimate_has_no_row_for_gets_no_estimate(tmp_path):
    """Not another term's row: recipes.probes.memory refuses a signal it does not know."""
    job_config = parse_config("train_configs/let_1.4b.toml", "--job.dump_folder", str(tmp_path), *FAKE)
    assert estimate(job_config, 8, signal="ContrastiveTerm") == (
        "no estimate (signal='ContrastiveTerm': this estimate has a term row for hidden, logits)")
