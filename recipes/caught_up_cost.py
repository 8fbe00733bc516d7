"""What one check of let.stop_when = "caught_up" costs, on this machine: the teacher's LM head and both CE sums.

    python -m recipes.caught_up_cost --config train_configs/replication_let_smollm2.toml \
        --let.teacher_path outputs/replication/teachers/SmolLM2-135M-Instruct-Q4_1

A check (every let.caught_up_every steps) runs, on the first let.caught_up_sequences sequences of a micro-batch,
the teacher's LM head over its final states and `lm_loss_sums` for the teacher and the student (the student's logits
already exist: its CE over the subsample is the only extra). This times exactly that work on random states and
labels of the run's shapes (teacher windows of teacher_seq_len), and prints the milliseconds per check and per
training step (/ caught_up_every) and the head's FLOPs, from which a GPU's cost is the FLOPs over its matmul rate.
"""

import argparse
import statistics
import time

import torch
from torchtitan.config import ConfigManager

import let_components  # noqa: F401  (registers the datasets)
from let_components.config import teacher_seq_len
from let_components.teacher import TeacherOptions, load_teacher
from let_components.token_alignment import lm_loss_sums, text_byte_lengths
from let_components.tokenizer import build_tokenizer, teacher_tokenizer


def median_ms(work, repeats: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a train config with [let] (teacher_path and shapes)")
    parser.add_argument("--repeats", type=int, default=5)
    args, overrides = parser.parse_known_args()
    job_config = ConfigManager().parse_args(["--job.config_file", args.config, *overrides])
    let, training = job_config.let, job_config.training
    rows, seq_len, t_len = let.caught_up_sequences, training.seq_len, teacher_seq_len(job_config)
    teacher = load_teacher(let.teacher_path, "cpu", torch.float32, TeacherOptions(max_seq_len=t_len))
    student_bytes = torch.from_numpy(text_byte_lengths(build_tokenizer(job_config), "model.hf_assets_path"))
    teacher_bytes = torch.from_numpy(text_byte_lengths(teacher_tokenizer(job_config), "let.teacher_path"))
    head = teacher.output if teacher.output is not None else teacher.tok_embeddings  # as lm_head_logits
    vocab, dim = head.weight.shape
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(rows, t_len, dim, generator=generator)
    teacher_labels = torch.randint(min(vocab, len(teacher_bytes)), (rows, t_len), generator=generator)
    student_logits = torch.randn(rows, seq_len, len(student_bytes), generator=generator)
    student_labels = torch.randint(len(student_bytes), (rows, seq_len), generator=generator)

    @torch.no_grad()
    def teacher_side() -> None:
        lm_loss_sums(teacher.logits(hidden), teacher_labels, teacher_bytes)

    @torch.no_grad()
    def student_side() -> None:
        lm_loss_sums(student_logits, student_labels, student_bytes)

    teacher_ms, student_ms = median_ms(teacher_side, args.repeats), median_ms(student_side, args.repeats)
    gflop = 2 * rows * t_len * dim * vocab / 1e9
    check_ms = teacher_ms + student_ms
    print(f"one check on {rows} sequences (teacher {rows} x {t_len} tokens, dim {dim}, vocab {vocab}; "
          f"student {rows} x {seq_len}, vocab {len(student_bytes)}), median of {args.repeats}, "
          f"{torch.get_num_threads()} threads:")
    print(f"  teacher LM head + CE   {teacher_ms:9.1f} ms  ({gflop:.1f} GFLOP in the head)")
    print(f"  student CE             {student_ms:9.1f} ms")
    print(f"  per check              {check_ms:9.1f} ms; per training step (every {let.caught_up_every}) "
          f"{check_ms / let.caught_up_every:.1f} ms")


if __name__ == "__main__":
    main()
