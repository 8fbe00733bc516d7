"""Throughput of LET against its baseline on this machine: alternating runs, both phases, one table.

    python -m recipes.reports.benchmark --baseline train_configs/baseline_debug.toml \\
        --let train_configs/let_debug.toml --steps 30 --stop-step 15 --warmup 3 --repeats 2 --out outputs/bench_debug \\
        [-- extra args for both runs]

Paired in one process (the teacher loaded, plain and LET steps alternating in blocks; paired.py):
    python -m recipes.reports.benchmark --paired --let train_configs/let_debug.toml --rounds 10 --block-steps 4 \
        --out outputs/paired_debug [-- extra args]
    python -m recipes.reports.benchmark --breakdown --let ...        # LET's pieces one by one: where the time goes
    python -m recipes.reports.benchmark --paired --arms plain,plain,plain+forward --let ...   # check the method itself

Other modes:
    python -m recipes.reports.benchmark --make-teacher DIR --teacher-shape smollm-135m --tokenizer assets/tokenizer
    python -m recipes.reports.benchmark --summarize OUT1 OUT2 ... [--summary-out FILE]  # one table of benchmark.jsons
    python -m recipes.reports.benchmark --loss-diff RUN_A RUN_B     # largest loss difference over 20 steps of two runs
    python -m recipes.reports.benchmark --paired-diff OUT_A OUT_B   # LET/plain of paired run B over A, with interval

Per-GPU memory computed from shapes rather than measured (the 7B student on 8 x 80 GB by default):
    python -m recipes.probes.memory
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
    parser.add_argument("--ngpu", type=int, default=None,
                        help="NGPU for run_train.sh (default: all accelerators; 1: one process, no launcher)")
    parser.add_argument("--label", default="", help="name of this comparison in --summarize tables")
    parser.add_argument("--let-first", action="store_true", help="each repeat runs LET before the baseline")
    parser.add_argument("--no-teacher-timing", action="store_true", help="skip timing the teacher forward alone")
    parser.add_argument("--rounds", type=int, default=10, help="paired: measured rounds (every arm twice each)")
    parser.add_argument("--block-steps", type=int, default=4,
                        help="paired: steps per block (at least 4; the first is run, not clocked)")
    parser.add_argument("--warmup-rounds", type=int, default=1, help="paired: rounds left out first")
    parser.add_argument("--confidence", type=float, default=0.95, help="paired: level of the t intervals")
    parser.add_argument("--arms", default=None, help="paired: comma-separated arms (recipes/reports/benchmark/arms.py)")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--paired", action="store_true", help="plain vs LET steps in one process (needs --let)")
    modes.add_argument("--breakdown", action="store_true", help="LET's step piece by piece in one process")
    modes.add_argument("--make-teacher", metavar="DIR", help="write a random-weight HF Llama teacher folder and exit")
    modes.add_argument("--summarize", nargs="+", metavar="OUT", help="one table over these benchmark outputs")
    modes.add_argument("--paired-diff", nargs=2, metavar="OUT", help="LET/plain ratio of two paired outputs, B over A")
    modes.add_argument("--loss-diff", nargs=2, metavar="RUN", help="largest loss difference of two runs' dump folders")
    parser.add_argument("--teacher-shape", default="smollm-135m", help="shape for --make-teacher")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder copied by --make-teacher")
    parser.add_argument("--summary-out", default=None, help="also write the --summarize Markdown to this file")
    args = parser.parse_args(argv)
    other_mode = args.make_teacher or args.summarize or args.loss_diff or args.paired_diff
    if (args.paired or args.breakdown) and not args.let:
        parser.error("--paired and --breakdown need --let")
    if not other_mode and not (args.paired or args.breakdown) and not (args.baseline and args.let):
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
    if args.paired_diff:
        from .paired import format_ratio_change

        print(format_ratio_change(*args.paired_diff))
        return
    if args.summarize:
        from .report import format_summary

        reports = [json.loads((Path(out) / "benchmark.json").read_text()) for out in args.summarize]
        markdown = format_summary(reports)
        if args.summary_out:
            Path(args.summary_out).write_text(markdown)
        print(markdown)
        return

    command = shlex.join(["python", "-m", "recipes.reports.benchmark", *sys.argv[1:]])
    if args.paired or args.breakdown:
        from .arms import BREAKDOWN, PAIRED
        from .paired import PairedSpec, run_paired, write_paired

        arms = args.arms.split(",") if args.arms else (BREAKDOWN if args.breakdown else PAIRED)
        spec = PairedSpec(
            let_config=args.let, arms=arms, rounds=args.rounds, block_steps=args.block_steps,
            warmup_rounds=args.warmup_rounds, confidence=args.confidence, out=args.out, extra_args=extra,
            ngpu=args.ngpu or 1, label=args.label, command=command,
        )
        print(write_paired(run_paired(spec), args.out))
        print(f"[benchmark] wrote {Path(args.out) / 'paired.md'} and paired.json")
        return

    from .measure import BenchmarkSpec, run_benchmark
    from .report import write_report

    spec = BenchmarkSpec(
        baseline_config=args.baseline, let_config=args.let, steps=args.steps, stop_step=args.stop_step,
        warmup=args.warmup, repeats=args.repeats, out=args.out, extra_args=extra, ngpu=args.ngpu,
        teacher_timing=not args.no_teacher_timing, label=args.label, command=command, let_first=args.let_first,
    )
    report = run_benchmark(spec)
    print(write_report(report, args.out))
    print(f"[benchmark] wrote {Path(args.out) / 'benchmark.md'} and benchmark.json")


if __name__ == "__main__":
    main()
