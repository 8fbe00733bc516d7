"""What one check of let.stop_when = "caught_up" costs, on this machine: the stop rule's own `observe`, timed.

    python -m recipes.probes.caught_up_cost --config train_configs/replication_let_smollm2.toml \
        --let.teacher_path outputs/replication/teachers/SmolLM2-135M-Instruct-Q4_1

A check (every let.caught_up_every steps) runs, on the first let.caught_up_sequences sequences of a micro-batch,
the teacher's LM head over its final states and the per-byte CE sums of the teacher and the student (the student's
logits already exist). This builds the run's stop rule as training does (stop_when forced to caught_up), feeds it
the teacher's final states of random tokens and random student logits of the run's shapes, and times
`CaughtUp.observe` - the code the training step calls - and the teacher's LM head inside it. `observe` runs once per
micro-batch, so a check step costs one `observe` per micro-batch of a rank (training.global_batch_size over
training.local_batch_size x --data-parallel ranks). It prints milliseconds per check and per training step
(x micro-batches / caught_up_every) and the head's FLOPs, from which a GPU's cost is the FLOPs over its matmul rate.
"""

import statistics
import time
from collections.abc import Callable

import torch

from let_components.prestart import check_before_start
from let_components.teacher.lm import TeacherLM

from ..common import parse_probe, probe_parser, run_teacher


def microbatches_per_step(global_batch_size: int, local_batch_size: int, data_parallel: int) -> int:
    """Micro-batches one rank runs per step (torchtitan's gradient accumulation; global -1: one local batch a rank)."""
    if global_batch_size < 0:
        return 1
    return max(1, global_batch_size // (local_batch_size * data_parallel))


def median_ms(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = probe_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-parallel", type=int, default=1,
                        help="data-parallel ranks of the run (micro-batches per rank = global / (local x this))")
    args, job_config = parse_probe(parser, overrides=["--let.stop_when", "caught_up"])
    let, training = job_config.let, job_config.training
    startup = check_before_start(job_config)  # the run's pieces as training builds them: the rule, the tokenizers
    rule, student_tokenizer = startup.stop_rule, startup.student_tokenizer
    rows, seq_len, t_len = let.caught_up_sequences, training.seq_len, startup.teacher_options.max_seq_len
    teacher = run_teacher(job_config)
    generator = torch.Generator().manual_seed(0)
    random_ids = lambda vocab, length: torch.randint(vocab, (rows, length), generator=generator)  # noqa: E731
    teacher_vocab = startup.teacher.tokenizer().get_vocab_size()
    student_vocab = student_tokenizer.get_vocab_size()
    with torch.no_grad():
        hidden = teacher(random_ids(teacher_vocab, t_len))
    teacher_lm = TeacherLM(lambda part: teacher.logits(hidden[part]), random_ids(teacher_vocab, t_len),
                           teacher.vocab_size)
    student_logits = torch.randn(rows, seq_len, student_vocab, generator=generator)
    student_labels = random_ids(student_vocab, seq_len)

    check_ms = median_ms(lambda: rule.observe(let.caught_up_every, student_logits, student_labels, teacher_lm),
                         args.repeats)
    with torch.no_grad():
        head_ms = median_ms(lambda: list(teacher_lm.chunks(rows)), args.repeats)
    dim, vocab = hidden.shape[-1], teacher.vocab_size
    microbatches = microbatches_per_step(training.global_batch_size, training.local_batch_size, args.data_parallel)
    gflop = 2 * rows * t_len * dim * vocab / 1e9
    print(f"one check on {rows} sequences (teacher {rows} x {t_len} tokens, dim {dim}, vocab {vocab}; "
          f"student {rows} x {seq_len}, vocab {student_vocab}), median of {args.repeats}, "
          f"{torch.get_num_threads()} threads:")
    print(f"  teacher LM head        {head_ms:9.1f} ms  ({gflop:.1f} GFLOP in the head)")
    print(f"  per check              {check_ms:9.1f} ms per micro-batch x {microbatches} micro-batches per step; "
          f"per training step (every {let.caught_up_every}) {check_ms * microbatches / let.caught_up_every:.1f} ms")


if __name__ == "__main__":
    main()
