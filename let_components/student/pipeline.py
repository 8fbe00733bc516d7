"""A student under pipeline parallelism (`parallelism.pipeline_parallel_degree > 1`): torchtitan's stage split."""

import torch
from torch import nn
from torchtitan.components.loss import LossFunction
from torchtitan.config import JobConfig
from torchtitan.distributed import ParallelDims
from torchtitan.protocols.train_spec import BaseModelArgs, ParallelizeFunction, PipeliningFunction

from ..config import LETConfigError


def pipeline_student(pipelining_fn: PipeliningFunction | None) -> PipeliningFunction | None:
    """The family's pipelining function (torchtitan's `pipeline_llm`, or None where the family has none), for a
    model that may carry `let_projection`.

    torchtitan's split keeps, per stage, the named root modules of that stage and sets every other root module to
    None. A baseline's `let_projection` is None, which the split never sees; a learned projection would vanish from
    every stage, so it is refused here rather than lost.
    """
    if pipelining_fn is None:
        return None

    def pipeline(model: nn.Module, parallel_dims: ParallelDims, job_config: JobConfig, device: torch.device,
                 model_args: BaseModelArgs, parallelize_fn: ParallelizeFunction, loss_fn: LossFunction):
        if getattr(model, "let_projection", None) is not None:
            # LET under PP goes here: the projection must travel with block k (let.student_layer), i.e. join the
            # module names of the stage that holds f"layers.{k}" (parallelism.module_fqns_per_model_part, or
            # torchtitan's generate_llm_fqn_per_model_part plus "let_projection" on that stage)
            raise LETConfigError(
                "parallelism.pipeline_parallel_degree > 1 with a learned let.projection: the stage split does not "
                "place let_projection yet; use let.enable = false or no pipeline parallelism"
            )
        return pipelining_fn(model, parallel_dims, job_config, device, model_args, parallelize_fn, loss_fn)

    return pipeline
