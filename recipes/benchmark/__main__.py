"""Throughput of LET against its baseline on this machine: alternating runs, both phases, one table.

    python -m recipes.benchmark --baseline train_configs/baseline_debug.toml --let train_configs/let_debug.toml \\
        --steps 30 --stop-step 15 --warmup 3 --repeats 2 --out outputs/bench_debug [-- extra args for both runs]

Other modes:
    python -m recipes.benchmark --make-teacher DIR --teacher-shape smollm-135m --tokenizer assets/tokenizer
    python -m recipes.benchmark --summarize OUT1 OUT2 ... [--summary-out FILE]   # one table over benchmark.json files
    python -m recipes.benchmark --loss-diff RUN_A RUN_B     # largest loss difference over 20 steps of two runs

Per-GPU memory computed from shapes rather than measured (the 7B student on 8 x 80 GB by default):
    python -m recipes.memory
"""

import argparse
import json
import shlex
import sys
from pathlib import Path


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Arguments after a bare `--` go unchanged to both configs' run_train.sh."""
    extra: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="TOML of the baseline ([let] enable = false)")
    parser.add_argument("--let", help="TOML of the LET run")
    parser.add_argument("--steps", type=int, default=30, help="training steps per run")
    parser.add_argument("--stop-step", type=int, default=15, help="let.stop_step of the LET runs (mid-run)")
    parser.add_argument("--warmup", type=int, default=3, help="first steps of every run left out")
    parser.add_argument("--repeats", type=int, default=3, help="baseline/LET pairs, alternating")
    parser.add_argument("--out", default="outputs/benchmark", help="benchmark.md, benchmark.json and runs/ go here")
    parser.add_argument("--ngpu", type=int, default=None, help="NGPU for run_train.sh (default: all accelerators)")
    parser.add_argument("--label", default="", help="name of this comparison in --summarize tables")
    parser.add_argument("--no-teacher-timing", action="store_true", help="skip timing the teacher forward alone")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--make-teacher", metavar="DIR", help="write a random-weight HF Llama teacher folder and exit")
    modes.add_argument("--summarize", nargs="+", metavar="OUT", help="one table over these benchmark outputs")
    modes.add_argument("--loss-diff", nargs=2, metavar="RUN", help="largest loss difference of two runs' dump folders")
    parser.add_argument("--teacher-shape", default="smollm-135m", help="shape for --make-teacher")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder copied by --make-teacher")
    parser.add_argument("--summary-out", default=None, help="also write the --summarize Markdown to this file")
    args = parser.parse_args(argv)
    other_mode = args.make_teacher or args.summarize or args.loss_diff
    if not other_mode and not (args.baseline and args.let):
        parser.error("--baseline and --let are required to benchmark")
    return args, extra


def main() -> None:
    args, extra = parse_args(sys.argv[1:])
    if args.make_teacher:
        from ..teacher_shapes import TEACHER_SHAPES
        from .random_teacher import make_random_teacher

        folder = make_random_teacher(args.make_teacher, TEACHER_SHAPES[args.teacher_shape], args.tokenizer)
        print(f"random {args.teacher_shape} teacher -> {folder}")
        return
    if args.loss_diff:
        from .report import loss_difference

        print(loss_difference(*args.loss_diff))
        return
    if args.summarize:
        from .report import format_summary

        reports = [json.loads((Path(out) / "benchmark.json").read_text()) for out in args.summarize]
        markdown = format_summary(reports)
        if args.summary_out:
            Path(args.summary_out).write_text(markdown)
        print(markdown)
        return

    from .measure import BenchmarkSpec, run_benchmark
    from .report import write_report

    spec = BenchmarkSpec(
        baseline_config=args.baseline, let_config=args.let, steps=args.steps, stop_step=args.stop_step,
        warmup=args.warmup, repeats=args.repeats, out=args.out, extra_args=extra, ngpu=args.ngpu,
        teacher_timing=not args.no_teacher_timing, label=args.label,
        command=shlex.join(["python", "-m", "recipes.benchmark", *sys.argv[1:]]),
    )
    report = run_benchmark(spec)
    print(write_report(report, args.out))
    print(f"[benchmark] wrote {Path(args.out) / 'benchmark.md'} and benchmark.json")


if __name__ == "__main__":
    main()
