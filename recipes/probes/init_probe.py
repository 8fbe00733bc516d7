"""At initialisation, how much of the student's block-k output is still its token embedding? Per flavor and init.

    python -m recipes.probes.init_probe --config train_configs/replication_let.toml --flavors debugmodel 1.4B

Why: LET pulls the direction of block k's output toward the teacher's state. Where that output is almost the raw
embedding row, its direction moves only as fast as AdamW moves embeddings (docs/results.md, initialisation study).
How much of it is the embedding depends on the width as well as the init: torchtitan's llama3 init draws embeddings
at std 1 and block weights near std 0.02, and a block's additions grow with sqrt(dim). A number measured on the
256-wide replication student therefore does not carry over to the 1.4B student as is; this measures any flavor the
config's model has, on random tokens, with the model built and initialised as torchtitan's Trainer does.
"""

import argparse
import json
from pathlib import Path

import torch

from ..common import initialised_student, parse_job_config

INITS = ("torchtitan", "hf")


def embedding_share(model: torch.nn.Module, block: int, tokens: torch.Tensor) -> dict[str, float]:
    """Mean over tokens of cos(block output, embedding row) and of |block output - embedding| / |embedding|."""
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        model.tok_embeddings.register_forward_hook(lambda m, a, out: captured.setdefault("embedding", out)),
        model.layers[str(block)].register_forward_hook(lambda m, a, out: captured.setdefault("block", out)),
    ]
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for hook in hooks:
            hook.remove()
    embedding, output = captured["embedding"].float(), captured["block"].float()
    return {
        "cosine": torch.nn.functional.cosine_similarity(output, embedding, dim=-1).mean().item(),
        "added": ((output - embedding).norm(dim=-1) / embedding.norm(dim=-1)).mean().item(),
    }


def probe(config: str, flavor: str, init: str, overrides: list[str], seed: int = 0, tokens: int = 256) -> dict:
    job_config = parse_job_config(config, ["--model.flavor", flavor, "--student.init", init, *overrides])
    model = initialised_student(job_config, seed)
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randint(0, model.model_args.vocab_size, (1, tokens), generator=generator)
    block = job_config.let.student_layer
    return {"flavor": flavor, "dim": model.model_args.dim, "init": init, "block": block,
            **embedding_share(model, block, batch)}


def table(rows: list[dict]) -> str:
    lines = ["| flavor | init | block | cos(block output, embedding) | |block output - embedding| / |embedding| |",
             "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {r['flavor']} ({r['dim']}d) | {r['init']} | {r['block']} | {r['cosine']:.3f} | {r['added']:.3f} |"
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a student TOML (its teacher gives the vocabulary)")
    parser.add_argument("--flavors", nargs="+", required=True, help="student flavors, e.g. debugmodel 1.4B")
    parser.add_argument("--inits", nargs="+", default=list(INITS), choices=INITS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args, overrides = parser.parse_known_args(argv)
    rows = [probe(args.config, flavor, init, overrides, args.seed) for flavor in args.flavors for init in args.inits]
    text = table(rows)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return text


if __name__ == "__main__":
    main()
