"""Run torchtitan 0.2.2 on a machine without an accelerator (CPU + gloo), or unchanged on GPUs.

torchtitan 0.2.2 assumes CUDA: its device type falls back to "cuda" and several modules import it by value.
`main()` patches exactly those places when no accelerator is present, so the same entry point trains on a
laptop, in CI and on a GPU cluster. Nothing here runs on a machine with an accelerator.
"""

import os
import resource
import sys
from datetime import timedelta

import torch
from torch.distributed.fsdp import FSDPModule
from torchtitan.config import ConfigManager
from torchtitan.tools.logging import logger


def on_cpu() -> bool:
    """True where torch sees no accelerator (CUDA, ROCm, XPU, ...)."""
    return not torch.accelerator.is_available()


class CPUMemoryMonitor:
    """torchtitan's DeviceMemoryMonitor for CPU: peak resident memory of this process, in the same fields."""

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)
        self.device_name = "cpu"
        self.device_capacity = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        self.device_capacity_gib = self.device_capacity / 2**30

    def get_peak_stats(self):
        from torchtitan.components.metrics import DeviceMemStats

        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
        pct = 100 * peak_gib / self.device_capacity_gib
        return DeviceMemStats(peak_gib, pct, peak_gib, pct, 0, 0)

    def reset_peak_stats(self) -> None:
        """The OS keeps no resettable peak: the figure is the process's peak so far."""


def _build_cpu_memory_monitor() -> CPUMemoryMonitor:
    return CPUMemoryMonitor()


def _set_pg_timeouts_cpu(timeout: timedelta, parallel_dims) -> None:
    """torchtitan's version passes barrier(device_ids=[...]), which gloo rejects."""
    torch.distributed.barrier()
    groups = [mesh.get_group() for mesh in parallel_dims.get_all_one_dimensional_meshes().values()] + [None]
    for group in groups:
        torch.distributed.distributed_c10d._set_pg_timeout(timeout, group)


_torch_histc = torch.histc


def _histc(input: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """torch.histc that also counts integer tensors on CPU (torch has no CPU kernel for them; torchtitan's MoE
    router counts tokens per expert with histc on expert indices). Exact for counts below 2**24."""
    if input.device.type == "cpu" and not input.is_floating_point():
        return _torch_histc(input.float(), *args, **kwargs).to(input.dtype)
    return _torch_histc(input, *args, **kwargs)


def use_cpu() -> None:
    """Point torchtitan's device globals at the CPU, and let histc count integers there (MoE routing). Idempotent."""
    import torchtitan.components.metrics as metrics
    import torchtitan.distributed.parallel_dims as parallel_dims
    import torchtitan.distributed.utils as dist_utils
    import torchtitan.tools.utils as tool_utils

    for module in (tool_utils, metrics, dist_utils):
        module.device_type, module.device_module = "cpu", torch.cpu
    parallel_dims.device_type = "cpu"
    metrics.build_device_memory_monitor = _build_cpu_memory_monitor
    dist_utils.set_pg_timeouts = _set_pg_timeouts_cpu
    torch.histc = _histc


def adapt_precision(job_config) -> None:
    """Precision follows the device: bf16 autocast on these CPUs is ~25x slower than float32."""
    if on_cpu() and job_config.training.mixed_precision_param != "float32":
        logger.info(
            f"No accelerator: training.mixed_precision_param={job_config.training.mixed_precision_param} "
            "-> float32 on CPU"
        )
        job_config.training.mixed_precision_param = "float32"


def force_sum_reduction(model: torch.nn.Module) -> None:
    """gloo has no PREMUL_SUM; torchtitan already divides by global valid tokens, so SUM is exact."""
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_force_sum_reduction_for_comms(True)


class _CPUConfigManager(ConfigManager):
    """torchtitan's ConfigManager; the parsed JobConfig gets the CPU's precision."""

    def parse_args(self, args: list[str] = sys.argv[1:]):
        job_config = super().parse_args(args)
        adapt_precision(job_config)
        return job_config


def main(trainer_cls) -> None:
    """torchtitan.train.main(trainer_cls), on CPU when the machine has no accelerator."""
    import torchtitan.train

    if on_cpu():
        use_cpu()
        torchtitan.train.ConfigManager = _CPUConfigManager
    torchtitan.train.main(trainer_cls)
