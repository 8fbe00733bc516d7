"""What each teacher backend costs per forward on this machine: native module against transformers, same folder.

    python -m recipes.probes.teacher_backends --teacher assets/teacher_debug --batch 8 --seq-len 256
    python -m recipes.probes.teacher_backends --teacher outputs/teachers/smollm-135m --batch 16 --seq-len 256

Loads the folder twice through the project's loader (let.teacher_backend = native and = transformers), checks that
both give the same final state, and times their forwards alternately (native, transformers, native, ...) so that a
change in the machine's load falls on both; prints the median milliseconds of each and their ratio. CPU float32,
eager: what a CPU run or a GPU run without compile sees of the module's own overhead.
"""

import argparse
import statistics
import time

import torch

from let_components.teacher import TeacherOptions, load_teacher

BACKENDS = ("native", "transformers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="Hugging Face teacher folder of a native model_type")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards per backend (after one warm-up)")
    args = parser.parse_args()
    teachers = {b: load_teacher(args.teacher, options=TeacherOptions(max_seq_len=args.seq_len, backend=b))
                for b in BACKENDS}
    vocab = teachers["native"].vocab_size
    tokens = torch.randint(vocab, (args.batch, args.seq_len), generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    with torch.no_grad():
        states = {b: teacher(tokens) for b, teacher in teachers.items()}  # warm-up, and the same-state check
        for _ in range(args.repeats):
            for backend, teacher in teachers.items():
                start = time.perf_counter()
                teacher(tokens)
                times[backend].append(1000 * (time.perf_counter() - start))
    difference = (states["native"] - states["transformers"]).abs().max().item()
    median = {b: statistics.median(t) for b, t in times.items()}
    print(f"{args.teacher}: batch {args.batch} x {args.seq_len}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} alternating forwards (max |state difference| {difference:.1e}):")
    for backend in BACKENDS:
        print(f"  {backend:13} {median[backend]:9.1f} ms per forward")
    print(f"  transformers / native: {median['transformers'] / median['native']:.2f}x")


if __name__ == "__main__":
    main()
