"""Every check that can run before torchtitan initialises distributed or builds anything, in one place.

A mistake becomes a one-line LETConfigError naming the TOML key, the value and what would be valid, before a
process group, a model or a teacher exists. The choices with registries (let.signal, let.token_alignment,
let.stop_when) check their own keys in their own packages; this module calls them in order.
"""

from torchtitan.config import JobConfig as TitanJobConfig
from torchtitan.protocols.train_spec import get_train_spec

from .config import LET, JobConfig, LETConfigError, latest_checkpoint_step, valid_choices
from .stop import check_stop_config, check_stop_tokenizers, teacher_needed
from .student import STUDENT_SPECS
from .teacher import check_teacher
from .terms import check_term_config
from .tokens import check_token_config, check_tokenizers


def check_before_start(job_config: JobConfig) -> int:
    """Config and teacher-folder checks that need no process group; returns the step the run resumes after. The
    learned projection is kept out of float8/MX (exclude_projection_from_quantization)."""
    if job_config.model.name not in STUDENT_SPECS:
        raise LETConfigError(
            f"model.name={job_config.model.name!r}: LET trains a student spec, one of {', '.join(STUDENT_SPECS)}"
        )
    flavors = get_train_spec(job_config.model.name).model_args
    if job_config.model.flavor not in flavors:
        raise LETConfigError(f"model.flavor={job_config.model.flavor!r}: valid are {', '.join(flavors)}")
    student_args = flavors[job_config.model.flavor]
    check_let_config(job_config, student_args.n_layers)
    resume_step = latest_checkpoint_step(job_config)
    attn_type = getattr(student_args, "attn_type", "sdpa")
    check_teacher(job_config, teacher_needed=teacher_needed(job_config, resume_step), resuming=resume_step > 0,
                  attn_type=attn_type)
    check_tokenizers(job_config)
    check_stop_tokenizers(job_config)
    exclude_projection_from_quantization(job_config)
    return resume_step


def check_let_config(job_config: JobConfig, student_layers: int) -> None:
    """Every `[let]` mistake we can see without building anything, each as a one-line error naming the key."""
    let, training, parallelism = job_config.let, job_config.training, job_config.parallelism
    if let.lambda_0 < 0:
        raise LETConfigError(f"let.lambda_0={let.lambda_0}: must be >= 0 (the paper uses 0.1)")
    for key in ("schedule", "projection", "teacher_backend", "teacher_dtype", "teacher_compile_mode",
                "kd_direction", "kd_combine"):
        value, valid = getattr(let, key), valid_choices(LET, key)
        if value not in valid:
            raise LETConfigError(f"let.{key}={value!r}: valid are {', '.join(valid)}")
    # the three choices with registries: each checks its name, then its own keys
    check_term_config(job_config)
    if let.teacher_seq_len < 0:
        raise LETConfigError(f"let.teacher_seq_len={let.teacher_seq_len}: must be >= 0 (0: training.seq_len)")
    check_token_config(job_config)
    check_stop_config(job_config)
    if not 1 <= let.stop_step <= training.steps:
        raise LETConfigError(
            f"let.stop_step={let.stop_step}: must be in 1..training.steps={training.steps} "
            "(alignment runs on steps 1..stop_step)"
        )
    if not 0 <= let.student_layer < student_layers:
        raise LETConfigError(
            f"let.student_layer={let.student_layer}: the student has {student_layers} blocks; "
            f"use 0..{student_layers - 1} (an early block, e.g. about a quarter of the depth)"
        )
    for key in ("pipeline_parallel_degree", "context_parallel_degree", "tensor_parallel_degree"):
        degree = getattr(parallelism, key)
        if degree > 1:
            raise LETConfigError(
                f"parallelism.{key}={degree}: not supported with LET yet (the block-k alignment needs the whole "
                "sequence and hidden state on one rank); use FSDP/HSDP (data_parallel_*_degree) or let.enable=false"
            )
    if let.teacher_compile_mode != "default":
        compile_config = job_config.compile
        if not (compile_config.enable and let.teacher_compile and compile_config.backend == "inductor"):
            raise LETConfigError(
                f"let.teacher_compile_mode={let.teacher_compile_mode!r}: needs a compiled teacher with inductor "
                f"(compile.enable=true, let.teacher_compile=true, compile.backend='inductor'; here "
                f"{compile_config.enable}, {let.teacher_compile}, {compile_config.backend!r}); or use 'default'"
            )
    for key in ("expert_parallel_degree", "expert_tensor_parallel_degree"):
        degree = getattr(parallelism, key)
        if degree > 1:
            raise LETConfigError(
                f"parallelism.{key}={degree}: expert parallelism is not supported with LET yet (untested: it needs "
                "2+ GPUs); MoE students train with FSDP/HSDP, experts sharded like every other weight"
            )
    if not let.teacher_path:
        raise LETConfigError(
            "let.teacher_path is empty: set it to a Hugging Face model folder (config.json + safetensors)"
        )


def exclude_projection_from_quantization(job_config: TitanJobConfig) -> None:
    """The learned LET projection stays in high precision: float8 or MX would quantise the alignment signal. Both of
    torchtitan's linear converters read their own filter list, so the projection joins each."""
    linear = job_config.quantize.linear
    for converter in (linear.float8, linear.mx):
        if "let_projection" not in converter.filter_fqns:
            converter.filter_fqns = [*converter.filter_fqns, "let_projection"]
