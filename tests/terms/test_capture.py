"""BlockCapture on the PARALLELIZED student: after the student spec's own parallelize function (FSDP2 over 2 gloo
ranks, full activation checkpointing, per-block torch.compile with the aot_eager backend), the alignment term's
gradient reaches exactly the embedding, blocks 0..k and the projection - the LM head only where it is the
embedding (tied) - and the hook fires once per step although activation checkpointing recomputes block k."""

import json
import re
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

K = 1
LAYERS = 4


def _student(tied: bool, world_size: int):
    """A tiny let_qwen3 student, parallelized as the trainer does it (meta device, parallelize, then init)."""
    import dataclasses

    from torchtitan.distributed import ParallelDims
    from torchtitan.protocols.train_spec import get_train_spec

    import let_components  # noqa: F401  (registers the student specs)
    from tests.support.config import parse_config

    spec = get_train_spec("let_qwen3")
    args = dataclasses.replace(
        spec.model_args["debugmodel"], dim=64, n_layers=LAYERS, n_heads=4, n_kv_heads=2, head_dim=16, hidden_dim=128,
        vocab_size=256, max_seq_len=16, enable_weight_tying=tied, projection_dim=8,
    )
    job_config = parse_config(
        "train_configs/let_qwen3_debug.toml", "--training.seq_len", "16", "--compile.enable", "--compile.backend",
        "aot_eager", "--activation_checkpoint.mode", "full",
    )
    parallel_dims = ParallelDims(
        dp_replicate=1, dp_shard=world_size, cp=1, tp=1, pp=1, ep=1, etp=1, world_size=world_size
    )
    with torch.device("meta"):
        model = spec.model_cls(args)
    model = spec.parallelize_fn(model, parallel_dims, job_config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        model.init_weights(buffer_device=None)
    return model


def _alignment_gradients(tied: bool, world_size: int) -> dict:
    """Alignment term only, backward; which parameters got a gradient, and how often the hook fired."""
    from torch.distributed.tensor import DTensor

    from let_components.terms.alignment import alignment_loss
    from let_components.terms.capture import BlockCapture

    model = _student(tied, world_size)
    calls = []

    class CountingCapture(BlockCapture):
        def _keep(self, module, args, output):
            calls.append(module)
            super()._keep(module, args, output)

    capture = CountingCapture([model], K)
    torch.manual_seed(dist.get_rank())
    tokens = torch.randint(0, 256, (2, 16))
    with capture.capturing():
        model(tokens)
    hidden = capture.pop()
    alignment_loss(hidden, torch.randn(2, 16, 8), torch.ones(2, 16, dtype=torch.bool)).backward()
    reached = {}
    for name, param in model.named_parameters():
        grad = param.grad.full_tensor() if isinstance(param.grad, DTensor) else param.grad
        reached[name] = grad is not None and bool(grad.abs().sum() > 0)
    head = model.output.weight.grad
    head = head.full_tensor() if isinstance(head, DTensor) else head
    return {
        "reached": reached,
        "head_reached": head is not None and bool(head.abs().sum() > 0),
        "hook_calls": len(calls),
        "wrapped": type(model.layers[str(K)]).__name__,
    }


def _worker(rank: int, folder: str) -> None:
    from let_components import platform

    platform.use_cpu()
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    results = {"fsdp_untied": _alignment_gradients(tied=False, world_size=2)}
    if rank == 0:  # tied qwen3 cannot be FSDP-sharded on torch 2.13 (see student/qwen3.py): one rank, no FSDP
        results["single_tied"] = _alignment_gradients(tied=True, world_size=1)
        (Path(folder) / "result.json").write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("capture")
    mp.spawn(_worker, args=(str(folder),), nprocs=2)
    return json.loads((folder / "result.json").read_text())


def _expected(name: str) -> bool:
    layer = re.match(r"layers\.(\d+)\.", name)
    return name.startswith(("tok_embeddings.", "let_projection.")) or (layer is not None and int(layer[1]) <= K)


@pytest.mark.parametrize("case", ["fsdp_untied", "single_tied"])
def test_alignment_gradient_of_the_parallelized_student_reaches_blocks_up_to_k_only(results, case):
    result = results[case]
    reached = result["reached"]
    assert sum(name.startswith("layers.") for name in reached) > LAYERS  # every block's parameters are listed
    for name, got in reached.items():
        assert got == _expected(name), name
    # the LM head shares the embedding's gradient only when it IS the embedding
    assert result["head_reached"] == (case == "single_tied")


@pytest.mark.parametrize("case", ["fsdp_untied", "single_tied"])
def test_hook_on_the_parallelized_block_fires_once_per_forward_and_backward(results, case):
    # the object in layers[k] is torch.compile's wrapper (around the checkpoint wrapper); AC recomputes the inner block
    assert "OptimizedModule" in results[case]["wrapped"]
    assert results[case]["hook_calls"] == 1


def test_hook_exists_only_inside_capturing():
    """Validation forwards and every step after stop_step run without the hook (and capture nothing)."""
    from let_components.student import Student, StudentArgs
    from let_components.terms.capture import BlockCapture

    model = Student(StudentArgs(dim=32, n_layers=2, n_heads=4, vocab_size=64, max_seq_len=8))
    capture = BlockCapture([model], 1)
    tokens = torch.randint(0, 64, (1, 8))
    with capture.capturing():
        assert len(model.layers["1"]._forward_hooks) == 1
        model(tokens)
    assert capture.pop().shape == (1, 8, 32)
    assert not model.layers["1"]._forward_hooks
    model(tokens)
    with pytest.raises(RuntimeError, match="student block 1 did not run"):
        capture.pop()


def test_a_forward_that_raises_leaves_no_state_behind():
    """Block k ran, then the forward failed: the captured state must not outlive it (memory), nor be popped by the
    next step as if its own."""
    from let_components.student import Student, StudentArgs
    from let_components.terms.capture import BlockCapture

    model = Student(StudentArgs(dim=32, n_layers=3, n_heads=4, vocab_size=64, max_seq_len=8))
    capture = BlockCapture([model], 1)
    failing = model.layers["2"].register_forward_hook(lambda *_: (_ for _ in ()).throw(FloatingPointError("boom")))
    with pytest.raises(FloatingPointError), capture.capturing():
        model(torch.randint(0, 64, (1, 8)))
    failing.remove()
    with pytest.raises(RuntimeError, match="student block 1 did not run"):
        capture.pop()
