"""Start-up in one pass: every check that can run before torchtitan initialises distributed or builds anything,
and every piece of the run decided once, in dependency order, and handed to the trainer (`StartUp`).

A mistake becomes a one-line LETConfigError naming the TOML key, the value and what would be valid, before a
process group, a model or a teacher exists. The order: the plain [let] keys; the three options (token alignment,
teacher term, stop rule), each checking its own keys; the step the run resumes after; the teacher's source; the
student's tokenizer; the stop rule, built from the run record; then what the rule says the run still needs: the
teacher folder and the tokenizers the token alignment reads.
"""

from dataclasses import dataclass
from typing import Any

from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.config import JobConfig as TitanJobConfig
from torchtitan.protocols.train_spec import get_train_spec

from .config import LET, JobConfig, LETConfigError, latest_checkpoint_step, valid_choices
from .record import RunRecord
from .stop import StopInputs, StopOption, StopRule, stop_option
from .student import STUDENT_SPECS
from .teacher import TeacherOptions, TeacherSource, check_teacher, teacher_source
from .terms import TermOption, term_option
from .tokens import TokenAlignment, token_alignment
from .tokens.tokenizers import check_tokenizer_fits, student_tokenizer, tokenizer_source

PIPELINE_SCHEDULES = ("GPipe", "1F1B", "Interleaved1F1B")
"""The pipeline schedules LET runs under: one forward and one whole backward per microbatch and stage."""


@dataclass
class StartUp:
    """What start-up decided, each built once: the trainer, its step and its resume ask these, never the config."""

    resume_step: int
    """The step the run resumes after (0: a fresh start)."""
    teacher: TeacherSource
    alignment: TokenAlignment
    term: TermOption
    stop_rule: StopRule
    """The one owner of the teacher's presence (let_components/stop/)."""
    record: RunRecord
    student_tokenizer: BaseTokenizer
    teacher_options: TeacherOptions
    """The teacher module's shape for this run: layer, window length, the student's attention kernel."""
    teacher_checked: bool = False
    """The teacher folder and the tokenizers it pairs were checked (they are, whenever the run will teach)."""


def check_before_start(job_config: JobConfig) -> StartUp:
    """The checks before torchtitan builds anything, and the run's pieces; the learned projection is kept out of
    float8/MX (exclude_projection_from_quantization)."""
    if job_config.model.name not in STUDENT_SPECS:
        raise LETConfigError(
            f"model.name={job_config.model.name!r}: LET trains a student spec, one of {', '.join(STUDENT_SPECS)}"
        )
    flavors = get_train_spec(job_config.model.name).model_args
    if job_config.model.flavor not in flavors:
        raise LETConfigError(f"model.flavor={job_config.model.flavor!r}: valid are {', '.join(flavors)}")
    student_args = flavors[job_config.model.flavor]
    alignment, term, stop = check_let_config(job_config, student_args)
    resume_step = latest_checkpoint_step(job_config)
    teacher = teacher_source(job_config)
    teacher.config  # noqa: B018  (read now: a missing or broken config.json is the first error, not a later one)
    record = RunRecord(job_config.job.dump_folder)
    tokenizer = student_tokenizer(job_config, teacher)
    rule = stop.build(job_config, StopInputs(resume_step, record, tokenizer, tokenizer_source(job_config, teacher)[1],
                                             teacher))
    options = TeacherOptions(layer=job_config.let.teacher_layer, max_seq_len=alignment.teacher_seq_len(job_config),
                             attn_type=getattr(student_args, "attn_type", "sdpa"))
    startup = StartUp(resume_step, teacher, alignment, term, rule, record, tokenizer, options)
    check_teacher_side(job_config, startup, needed=rule.needed_after(resume_step))
    exclude_projection_from_quantization(job_config)
    return startup


def check_teacher_side(job_config: JobConfig, startup: StartUp, needed: bool) -> None:
    """The teacher folder and the tokenizers: before start, and again after a resume whose checkpoint teaches where
    the record said the teacher had left. What reads the teacher folder runs only when the run will teach (the
    folder may be gone once the teacher has left)."""
    teacher, options, alignment = startup.teacher, startup.teacher_options, startup.alignment
    check_teacher(teacher, options, alignment.teacher_seq_len_key(job_config), needed=needed,
                  resuming=startup.resume_step > 0)
    alignment.check_tokenizers(job_config, teacher, startup.student_tokenizer, needed)
    check_tokenizer_fits(startup.student_tokenizer, tokenizer_source(job_config, teacher),
                         alignment.student_vocab_size(job_config, teacher))
    startup.teacher_checked = startup.teacher_checked or needed


def check_let_config(job_config: JobConfig, student_args: Any) -> tuple[TokenAlignment, TermOption, StopOption]:
    """Every `[let]` mistake we can see without building anything, each as a one-line error naming the key; returns
    the run's three options (token alignment, teacher term, stop rule), each having checked its own keys."""
    let, training, parallelism = job_config.let, job_config.training, job_config.parallelism
    student_layers = student_args.n_layers
    if let.lambda_0 < 0:
        raise LETConfigError(f"let.lambda_0={let.lambda_0}: must be >= 0 (the paper uses 0.1)")
    for key in ("schedule", "projection", "teacher_backend", "teacher_dtype", "teacher_compile_mode",
                "kd_direction", "kd_combine"):
        value, valid = getattr(let, key), valid_choices(LET, key)
        if value not in valid:
            raise LETConfigError(f"let.{key}={value!r}: valid are {', '.join(valid)}")
    if let.teacher_seq_len < 0:
        raise LETConfigError(f"let.teacher_seq_len={let.teacher_seq_len}: must be >= 0 (0: training.seq_len)")
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
    if parallelism.pipeline_parallel_degree > 1:
        schedule = parallelism.pipeline_parallel_schedule
        if schedule not in PIPELINE_SCHEDULES:
            raise LETConfigError(
                f"parallelism.pipeline_parallel_schedule={schedule!r}: LET under pipeline parallelism takes "
                f"{', '.join(PIPELINE_SCHEDULES)} (zero-bubble and DualPipeV split the backward, which the term's "
                "pass-through at block k does not survive)"
            )

    if parallelism.context_parallel_degree > 1:
        raise LETConfigError(
            f"parallelism.context_parallel_degree={parallelism.context_parallel_degree}: not supported with LET (the "
            "teacher must read each whole sequence before torchtitan shards it, and torch's ring attention here has "
            "rules for the GPU SDPA kernels only: docs/parallelism.md); use FSDP/HSDP and tensor parallelism"
        )
    tp = parallelism.tensor_parallel_degree
    heads = {"n_heads": getattr(student_args, "n_heads", 1), "n_kv_heads": getattr(student_args, "n_kv_heads", None)}
    for name, count in heads.items():
        if tp > 1 and count and count % tp:
            raise LETConfigError(
                f"parallelism.tensor_parallel_degree={tp}: the student ({job_config.model.name} "
                f"{job_config.model.flavor}) has {name}={count}, which TP must divide; use a degree that divides it"
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
    if teacher_source(job_config) is None:
        raise LETConfigError(
            "let.teacher_path is empty: set it to a Hugging Face model folder (config.json + safetensors)"
        )
    alignment, term, stop = token_alignment(job_config), term_option(job_config), stop_option(job_config)
    alignment.check_config(job_config)
    term.check_config(job_config, alignment)
    stop.check_config(job_config)
    return alignment, term, stop


def exclude_projection_from_quantization(job_config: TitanJobConfig) -> None:
    """The learned LET projection stays in high precision: float8 or MX would quantise the alignment signal. Both of
    torchtitan's linear converters read their own filter list, so the projection joins each."""
    linear = job_config.quantize.linear
    for converter in (linear.float8, linear.mx):
        if "let_projection" not in converter.filter_fqns:
            converter.filter_fqns = [*converter.filter_fqns, "let_projection"]
