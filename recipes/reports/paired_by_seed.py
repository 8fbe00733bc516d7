"""Per-seed paired differences of one measured number, read against a threshold fixed before the runs.

    python -m recipes.reports.paired_by_seed --results outputs/replication/why/ood --key nats_per_token \\
        --threshold -0.02
    python -m recipes.reports.paired_by_seed --results outputs/replication/why/probe --key mapped_bits_per_byte \\
        --threshold -0.05 [--json paired.json]

Every RUN_sSEED.json or RUN_sSEED_stepN.json file in --results is one measurement (recipes.probes.bits_per_byte's and
recipes.probes.knowledge_probe's --json). Each run other than --baseline is paired with the baseline's measurement of
the same seed and step, and the difference run - baseline is read: "meets" only when every seed's difference is at or
below --threshold and at least --min-seeds seeds are paired. Why pairs: runs of one seed share their data order and
initialisation, so the seed-to-seed spread of a loss (a few hundredths of a nat here) mostly cancels in the pair. Lower
is better for the numbers this is for (losses, bits per byte). """

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

ROUNDING = 1e-9
"""A difference this far above the threshold still meets it: 5.08 - 5.10 is -0.0199999... in floating point."""
RESULT_NAME = re.compile(r"(?P<run>.+)_s(?P<seed>\d+)(?:_step(?P<step>\d+))?\.json")

Results = dict[tuple[str, int | None], dict[int, float]]
"""(run, step or None) -> {seed: value}."""


def read_results(folder: Path, key: str) -> Results:
    """The `key` of every RUN_sSEED[_stepN].json in `folder`."""
    results: Results = defaultdict(dict)
    for path in sorted(folder.glob("*.json")):
        match = RESULT_NAME.fullmatch(path.name)
        if not match:
            continue
        measurement = json.loads(path.read_text())
        if key not in measurement:
            raise ValueError(f"--key {key}: not in {path} (it has {', '.join(sorted(measurement))})")
        step = int(match["step"]) if match["step"] else None
        results[(match["run"], step)][int(match["seed"])] = float(measurement[key])
    if not results:
        raise ValueError(f"--results {folder}: no RUN_sSEED.json or RUN_sSEED_stepN.json files there")
    return dict(results)


def paired(results: Results, baseline: str, threshold: float, min_seeds: int = 2) -> list[dict[str, Any]]:
    """One row per (run, step) other than the baseline: its per-seed differences to the baseline and the reading."""
    runs = sorted({run for run, _ in results} - {baseline})
    if len(runs) == len({run for run, _ in results}):
        raise ValueError(f"--baseline {baseline}: no such run among {', '.join(runs)}")
    rows = []
    for run, step in sorted((k for k in results if k[0] != baseline), key=lambda k: (k[0], k[1] or 0)):
        base = results.get((baseline, step), {})
        differences = {seed: value - base[seed] for seed, value in sorted(results[(run, step)].items())
                       if seed in base}
        meets = len(differences) >= min_seeds and all(d <= threshold + ROUNDING for d in differences.values())
        rows.append({"run": run, "step": step, "differences": differences, "meets": meets})
    return rows


def table(rows: list[dict[str, Any]], key: str, threshold: float) -> str:
    seeds = sorted({seed for row in rows for seed in row["differences"]})
    lines = ["| run | step | " + " | ".join(f"seed {s}: {key} - baseline" for s in seeds)
             + f" | every seed <= {threshold:+g} |",
             "| --- | ---: |" + " ---: |" * len(seeds) + " --- |"]
    for row in rows:
        cells = [f"{row['differences'][s]:+.4f}" if s in row["differences"] else "-" for s in seeds]
        step = "final" if row["step"] is None else str(row["step"])
        lines.append(f"| {row['run']} | {step} | " + " | ".join(cells) + f" | {'yes' if row['meets'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, type=Path, help="folder of RUN_sSEED[_stepN].json files")
    parser.add_argument("--key", required=True, help="the number to compare, e.g. nats_per_token")
    parser.add_argument("--threshold", required=True, type=float, help="the largest difference that counts")
    parser.add_argument("--baseline", default="baseline", help="the run every other is paired with")
    parser.add_argument("--min-seeds", type=int, default=2, help="seeds a run needs paired to meet it (default 2)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    try:
        rows = paired(read_results(args.results, args.key), args.baseline, args.threshold, args.min_seeds)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    text = table(rows, args.key, args.threshold)
    print(text, end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"key": args.key, "threshold": args.threshold, "rows": rows}, indent=2) + "\n")
    return text


if __name__ == "__main__":
    main()
