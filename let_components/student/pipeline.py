"""A student under pipeline parallelism (`parallelism.pipeline_parallel_degree > 1`): torchtitan's stage split, with
a learned projection on the stage of block k. The CE's division before backward is the trainer's
(let_components/pipeline_loss.py).
"""

import copy
import dataclasses
import math

import torch
from torch import nn
from torch.distributed.pipelining.schedules import PipelineScheduleSingle, get_schedule_class
from torchtitan.components.loss import LossFunction
from torchtitan.config import JobConfig
from torchtitan.distributed import ParallelDims
from torchtitan.distributed.pipeline_parallel import generate_llm_fqn_per_model_part
from torchtitan.protocols.train_spec import BaseModelArgs, ParallelizeFunction, PipeliningFunction

from ..config import LETConfigError


def pipeline_student(pipelining_fn: PipeliningFunction | None) -> PipeliningFunction | None:
    """The family's pipelining function (torchtitan's `pipeline_llm`, or None where the family has none), for a
    model that may carry `let_projection`.

    torchtitan's split keeps, per stage, the named root modules of that stage and sets every other root module to
    None. A baseline's `let_projection` is None, which the split never sees; a learned projection travels with block
    k: its name joins the stage that holds f"layers.{k}" (parallelism.module_fqns_per_model_part, torchtitan's own
    split when the config names none).
    """
    if pipelining_fn is None:
        return None

    def pipeline(model: nn.Module, parallel_dims: ParallelDims, job_config: JobConfig, device: torch.device,
                 model_args: BaseModelArgs, parallelize_fn: ParallelizeFunction, loss_fn: LossFunction):
        if getattr(model, "let_projection", None) is not None:
            parts = with_projection(stage_module_names(job_config, parallel_dims.pp, model_args.n_layers),
                                    job_config.let.student_layer)
            job_config = copy.copy(job_config)  # this run's split, not a change to the shared config
            job_config.parallelism = dataclasses.replace(job_config.parallelism, module_fqns_per_model_part=parts)
        return pipelining_fn(model, parallel_dims, job_config, device, model_args, parallelize_fn, loss_fn)

    return pipeline


def stage_module_names(job_config: JobConfig, pp: int, n_layers: int) -> list[list[str]]:
    """The root module names of every stage as torchtitan 0.2.2's pipeline_llm splits them: the config's
    parallelism.module_fqns_per_model_part, else its generated split over the schedule's virtual stages."""
    parallelism = job_config.parallelism
    if parallelism.module_fqns_per_model_part is not None:
        return [list(names) for names in parallelism.module_fqns_per_model_part]
    single = issubclass(get_schedule_class(parallelism.pipeline_parallel_schedule), PipelineScheduleSingle)
    weights = (parallelism.pipeline_parallel_first_stage_less_layers,
               parallelism.pipeline_parallel_last_stage_less_layers)
    if parallelism.pipeline_parallel_layers_per_stage is not None:
        stages = math.ceil((n_layers + sum(weights)) / parallelism.pipeline_parallel_layers_per_stage)
    else:
        stages = pp * (1 if single else 2)
    return generate_llm_fqn_per_model_part(stages, n_layers, *weights)


def with_projection(stages: list[list[str]], student_layer: int) -> list[list[str]]:
    """`stages` with "let_projection" in the stage that holds block `student_layer`: the capture hook maps block
    k's output with it, on that stage."""
    block = f"layers.{student_layer}"
    holder = next((i for i, names in enumerate(stages) if block in names), None)
    if holder is None:
        raise LETConfigError(f"let.student_layer={student_layer}: no pipeline stage holds {block} ({stages})")
    return [[*names, "let_projection"] if i == holder else names for i, names in enumerate(stages)]
