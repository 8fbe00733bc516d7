"""Shipped configs built at their world size on the fake backend, on the meta device: a dry run's build without its
step (minutes at 7B on a CPU), in one process for all configs (torchtitan's import is paid once).

    python -m tests.support.dry_build DUMP_FOLDER CONFIG=WORLD_SIZE ...

prints one JSON line per config: what it built, or the one-line error that stopped it.
"""

import json
import os
import sys
from pathlib import Path

import torch.distributed as dist
import torchtitan.tools.utils as tool_utils
from torch.distributed.tensor import DTensor
from torchtitan.config import ConfigManager
from torchtitan.tools.logging import init_logger

import let_components  # noqa: F401  (registers the student specs and the datasets)
from let_components import dry_run, platform
from let_components.teacher import teacher_source
from let_components.trainer import build_trainer


def build_on_meta(config: str, world: int, dump_folder: Path) -> dict:
    """torchtitan's Trainer.__init__ (with LETTrainer's start-up) for `config` at `world` fake ranks: the job adapted
    as a dry run's, every weight on meta (to_empty and init_weights included), nothing stepped."""
    os.environ.update(NGPU=str(world), LOCAL_RANK="0")
    args = ["--job.config_file", config, "--job.dump_folder", str(dump_folder), "--comm.mode", "fake_backend"]
    job_config = ConfigManager().parse_args(args)
    platform.adapt_precision(job_config)
    dry_run.adapt(job_config, args)
    trainer = build_trainer(job_config)
    try:
        parameters = [p for model in trainer.model_parts for p in model.parameters()]
        meshes = {p.device_mesh.size() for p in parameters if isinstance(p, DTensor)}
        teacher = teacher_source(job_config)
        return {
            "config": config, "world": world, "trainer": type(trainer).__name__,
            "parameters": sum(p.numel() for p in parameters),
            "rank0_parameters": sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in parameters),
            "sharded_over": sorted(meshes), "on_meta": all(p.device.type == "meta" for p in parameters),
            "teacher_path": None if teacher is None else teacher.path,
            "teacher": None if teacher is None else type(teacher).__name__,
            "teacher_vocab": None if teacher is None else teacher.text["vocab_size"],
        }
    finally:
        trainer.close()
        dist.destroy_process_group()


def main() -> None:
    init_logger()
    platform.use_cpu()
    tool_utils.device_type = "meta"  # Trainer.__init__ builds on (and moves to) this device type
    dump_root = Path(sys.argv[1])
    for spec in sys.argv[2:]:
        config, world = spec.rsplit("=", 1)
        try:
            result = build_on_meta(config, int(world), dump_root / Path(config).stem)
        except Exception as error:  # noqa: BLE001  (reported per config, so one broken config names itself)
            result = {"config": config, "world": int(world), "error": f"{type(error).__name__}: {error}"}
            if dist.is_initialized():
                dist.destroy_process_group()
        print("DRY_BUILD " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
