"""Per-GPU memory of a LET run under FSDP2, computed from shapes (not measured): does a student fit?

    python -m recipes.probes.memory        # the paper's 7B setting: 7B student, Llama-3.2-1B teacher, 8 x 80 GB
    python -m recipes.probes.memory --model let_qwen3 --flavor 1.7B --teacher-config DIR/config.json [--signal logits]

Parameter counts come from the real modules built on the meta device (no memory, no formula drift); the
activation terms use the standard per-layer formula of Korthikanti et al. 2022 ("Reducing Activation
Recomputation in Large Transformer Models"): s*b*h*(34 + 5*a*s/h) bytes per block in 16-bit. The 5*a*s/h
part is the stored s x s attention scores; SDPA/flash attention never stores them, so it is left out.
"""

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchtitan.protocols.train_spec import BaseModelArgs, get_train_spec

import let_components  # noqa: F401  (registers the student specs)
from let_components.student import Student
from let_components.teacher import teacher_architecture
from let_components.teacher.registry import TeacherOptions

from ..assets.teacher_shapes import TEACHER_SHAPES

GIB = 2**30
LET_ITEMS = ("teacher", "alignment", "distillation")
"""Rows (by name prefix) that a baseline run does not have: all freed after stop_step."""


@dataclass
class ParameterCount:
    total: int
    embedding: int
    output: int
    per_block: int
    blocks: int

    @property
    def largest_fsdp_group(self) -> int:
        """torchtitan shards embeddings, each block, and norm + output as separate FSDP2 groups."""
        return max(self.embedding, self.output, self.per_block)


def student_parameters(args: BaseModelArgs, model_cls: type = Student) -> ParameterCount:
    """Counts of a dense student (every block alike); MoE students are refused: their blocks differ (dense first
    blocks, expert counts) and their activations depend on routing, which this formula does not model."""
    if getattr(args, "moe_enabled", False) or hasattr(args, "n_dense_layers"):
        raise ValueError(
            f"{model_cls.__name__}: the memory estimate covers dense students (let_llama, let_qwen3), not MoE ones"
        )
    with torch.device("meta"):
        model = model_cls(args)
    block = next(iter(model.layers.values()))
    return ParameterCount(
        total=sum(p.numel() for p in model.parameters()),
        embedding=model.tok_embeddings.weight.numel(),
        output=model.output.weight.numel(),
        per_block=sum(p.numel() for p in block.parameters()),
        blocks=len(model.layers),
    )


def teacher_parameters(config: dict[str, Any]) -> int:
    """Parameters of a registered teacher as LET loads it (tied checkpoints have no separate LM head)."""
    with torch.device("meta"):
        model = teacher_architecture(config).build(config, TeacherOptions())
    return sum(p.numel() for p in model.parameters())


@dataclass
class MemorySetup:
    gpus: int = 8
    """FSDP2 shards the fp32 master weights, gradients and AdamW states this many ways."""
    gpu_capacity_gib: float = 79.1
    """An 80 GB H100/A100 reports about 79.1 GiB to torch."""
    seq_len: int = 2048
    overhead_gib: float = 3.0
    """CUDA context, NCCL buffers and allocator fragmentation: an assumption, not derived."""


@dataclass
class MemoryItem:
    name: str
    formula: str
    gib: dict[int, float]
    """local batch size -> GiB per GPU."""


def estimate_memory(
    student: BaseModelArgs,
    teacher_config: dict[str, Any],
    setup: MemorySetup,
    batch_sizes: tuple[int, ...],
    model_cls: type = Student,
    signal: str = "hidden",
    kd_chunk_tokens: int = 512,
) -> list[MemoryItem]:
    """Per-GPU memory of LET while aligning (the costly phase), full activation checkpointing, bf16 compute;
    signal = "logits" (SALT, RKD) replaces the alignment row by the distillation row."""
    params = student_parameters(student, model_cls)
    teacher_params = teacher_parameters(teacher_config)
    n, s, d, layers, vocab = setup.gpus, setup.seq_len, student.dim, student.n_layers, student.vocab_size
    d_t, ffn_t = teacher_config["hidden_size"], teacher_config["intermediate_size"]
    p = params.total

    def constant(value: float) -> dict[int, float]:
        return {b: value / GIB for b in batch_sizes}

    def per_batch(bytes_per_sample: float) -> dict[int, float]:
        return {b: b * bytes_per_sample / GIB for b in batch_sizes}

    items = [
        MemoryItem("student fp32 master weights, sharded", "4 P / N", constant(4 * p / n)),
        MemoryItem("student fp32 gradients, sharded", "4 P / N (FSDP2 reduces in fp32)", constant(4 * p / n)),
        MemoryItem("AdamW exp_avg + exp_avg_sq fp32, sharded", "8 P / N", constant(8 * p / n)),
        MemoryItem(
            "FSDP2 unsharded group + prefetched block",
            "G (2 + 2 + 4) + 2 P_block (G = largest group: bf16 weight, bf16 grad, fp32 reduce-scatter copy)",
            constant(params.largest_fsdp_group * 8 + 2 * params.per_block),
        ),
        MemoryItem("teacher weights bf16, replicated", "2 P_T", constant(2 * teacher_params)),
        MemoryItem(
            "teacher forward working set (no grad)", "2 b s (2 h_T + 3 ffn_T)", per_batch(2 * s * (2 * d_t + 3 * ffn_t))
        ),
        MemoryItem("full AC: saved block inputs bf16", "2 L b s h", per_batch(2 * layers * s * d)),
        MemoryItem("full AC: one block recomputed in backward", "34 b s h (Korthikanti, SDPA)", per_batch(34 * s * d)),
        MemoryItem("logits + cross-entropy", "10 b s V (bf16 logits, fp32 copy, fp32 grad)", per_batch(10 * s * vocab)),
        MemoryItem(
            "alignment term", "b s (2 h_T + 12 h) (teacher bf16, 3 fp32 width-h copies)",
            per_batch(s * (2 * d_t + 12 * d)),
        )
        if signal == "hidden"
        else MemoryItem(
            "distillation term (KL)",
            f"4 b s V + 32 min(c, b s) V (teacher logits bf16, bf16 gradient buffer, fp32 chunk of c = "
            f"{kd_chunk_tokens} tokens)",
            {b: sum(distillation_bytes(b * s, vocab, kd_chunk_tokens).values()) / GIB for b in batch_sizes},
        ),
        MemoryItem("CUDA context, NCCL, fragmentation (assumed)", "constant", constant(setup.overhead_gib * GIB)),
    ]
    return items


KD_CHUNK_FLOAT32_COPIES = 8
"""Float32 chunk x vocab tensors alive at once in one KL chunk (both log-softmaxes, the probabilities, the product,
and their gradients). Measured on CPU with float32 logits: 5 (live tensor storages counted under a dispatch mode,
both directions, 2k-4k tokens); bf16 logits on GPU add the float32 casts of the chunk; 8 keeps a margin."""


def distillation_bytes(tokens: int, vocab: int, chunk_tokens: int, logit_bytes: int = 2) -> dict[str, int]:
    """Peak memory the logit-distillation term (signal = "logits") adds per micro-batch of `tokens` tokens.

    teacher logits in the teacher's dtype (bf16 on GPU), the KL's gradient buffer in the student logits' dtype (bf16
    under mixed precision; let_components/terms/distillation.py) and one chunk's float32 working set. The teacher
    logits and the buffer together are one float32 copy's worth of bytes.
    """
    return {
        "teacher logits": logit_bytes * tokens * vocab,
        "gradient buffer": logit_bytes * tokens * vocab,
        "chunk working set": 4 * KD_CHUNK_FLOAT32_COPIES * min(chunk_tokens, tokens) * vocab,
    }


def total(items: list[MemoryItem]) -> dict[int, float]:
    batch_sizes = items[0].gib.keys()
    return {b: sum(item.gib[b] for item in items) for b in batch_sizes}


def llama_3_2_1b_config() -> dict[str, Any]:
    """config.json numbers of Llama-3.2-1B, the paper's teacher for the 7B student."""
    return TEACHER_SHAPES["llama-3.2-1b"].hf_config()


def format_estimate(
    model: str,
    flavor: str,
    teacher_config: dict[str, Any],
    teacher_name: str,
    setup: MemorySetup = MemorySetup(),
    batch_sizes: tuple[int, ...] = (1, 2),
    signal: str = "hidden",
) -> str:
    """Markdown: parameter counts and the per-GPU memory table of a dense student spec's flavor with a teacher."""
    spec = get_train_spec(model)
    student = dataclasses.replace(spec.model_args[flavor], vocab_size=teacher_config["vocab_size"])
    params = student_parameters(student, spec.model_cls)
    items = estimate_memory(student, teacher_config, setup, batch_sizes, spec.model_cls, signal)
    sums = total(items)
    columns = " | ".join(f"b={b} GiB" for b in batch_sizes)
    lines = [
        f"{model} {flavor} student (dim {student.dim}, {student.n_layers} blocks, {student.n_heads} heads, vocab "
        f"{student.vocab_size}): P = {params.total:,} parameters "
        f"(embedding {params.embedding:,}, output {params.output:,}, {params.blocks} x {params.per_block:,} per block)",
        f"Teacher {teacher_name}: P_T = {teacher_parameters(teacher_config):,} parameters",
        f"FSDP2 over N = {setup.gpus} GPUs, bf16 compute (mixed precision), fp32 master weights, full activation "
        f"checkpointing, seq_len s = {setup.seq_len}, local batch b; computed from shapes, not measured.",
        "",
        f"| per GPU | formula (bytes) | {columns} |",
        f"|---|---|{'---:|' * len(batch_sizes)}",
    ]
    for item in items:
        values = " | ".join(f"{item.gib[b]:.2f}" for b in batch_sizes)
        lines.append(f"| {item.name} | {item.formula} | {values} |")
    lines.append(f"| **total** | | {' | '.join(f'**{sums[b]:.1f}**' for b in batch_sizes)} |")
    let_only = [item for item in items if item.name.startswith(LET_ITEMS)]
    lines.append(
        "| of which LET adds while aligning (teacher + alignment or distillation rows) | | "
        + " | ".join(f"{sum(item.gib[b] for item in let_only):.2f}" for b in batch_sizes)
        + " |"
    )
    lines.append(
        f"| headroom on an 80 GB GPU ({setup.gpu_capacity_gib} GiB) | | "
        + " | ".join(f"{setup.gpu_capacity_gib - sums[b]:.1f}" for b in batch_sizes)
        + " |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="let_llama", help="student spec ([model] name); dense students only")
    parser.add_argument("--flavor", default="7B")
    parser.add_argument("--teacher-config", help="a teacher's config.json (default: Llama-3.2-1B's numbers)")
    parser.add_argument("--gpus", type=int, default=MemorySetup.gpus)
    parser.add_argument("--signal", choices=("hidden", "logits"), default="hidden",
                        help="[let] signal: hidden = LET's alignment, logits = SALT/RKD distillation")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2], help="local batch sizes b")
    args = parser.parse_args()
    if args.teacher_config is None:
        config, name = llama_3_2_1b_config(), "Llama-3.2-1B (tied embeddings)"
    else:
        config, name = json.loads(Path(args.teacher_config).read_text()), args.teacher_config
    try:
        print(format_estimate(args.model, args.flavor, config, name, MemorySetup(gpus=args.gpus),
                              tuple(args.batch_sizes), args.signal))
    except ValueError as error:
        raise SystemExit(f"recipes.probes.memory: {error}") from None


if __name__ == "__main__":
    main()
