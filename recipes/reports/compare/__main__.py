"""Compare LET runs with their baseline: speedup to the baseline's final validation loss, final losses, a plot.

    python -m recipes.reports.compare --baseline outputs/baseline_debug --let outputs/let_debug --out outputs/compare
    # seeds: several folders per group; NAME=PATH[,PATH...] names a LET group
    python -m recipes.reports.compare --baseline runs/base_s0 runs/base_s1 \
        --let let=runs/let_s0,runs/let_s1 l2m=runs/l2m_s0,runs/l2m_s1 --out outputs/compare

Each run is a torchtitan dump folder with TensorBoard events (validation enabled). Writes compare.md,
compare.json and compare.png (needs matplotlib: pip install 'let-titan[plot]') into --out.
"""

import argparse
import importlib.util

from .report import write_comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--baseline", nargs="+", action="extend", required=True,
        help="baseline dump folder(s); several are seeds of one baseline (NAME=PATH names it)",
    )
    parser.add_argument(
        "--let", nargs="+", action="extend", required=True,
        help="LET runs, each PATH or NAME=PATH[,PATH...] (comma-separated folders are seeds of one run)",
    )
    parser.add_argument("--out", default="outputs/compare", help="folder for compare.md, compare.json, compare.png")
    parser.add_argument("--no-plot", action="store_true", help="skip compare.png")
    args = parser.parse_args()
    with_plot = not args.no_plot and importlib.util.find_spec("matplotlib") is not None
    _, table = write_comparison(args.baseline, args.let, args.out, with_plot=with_plot)
    print(table)
    if not args.no_plot and not with_plot:
        print("matplotlib is not installed: no compare.png (pip install matplotlib)")
    print(f"wrote {args.out}/compare.md, compare.json" + (", compare.png" if with_plot else ""))


if __name__ == "__main__":
    main()
