"""The Llama student's flavors (let_components/student/llama.py): the paper's shapes."""

import dataclasses

import pytest
import torch

from let_components.student import Student, ffn_hidden_dim, student_args

PAPER_SHAPES = {  # dim, layers, heads, SwiGLU width
    "1.4B": (2048, 24, 16, 5632),
    "7B": (4096, 32, 32, 11008),
}


@pytest.mark.parametrize("flavor", PAPER_SHAPES)
def test_paper_student_shapes(flavor):
    args = student_args[flavor]
    dim, layers, heads, ffn = PAPER_SHAPES[flavor]
    assert (args.dim, args.n_layers, args.n_heads, ffn_hidden_dim(args)) == (dim, layers, heads, ffn)
    with torch.device("meta"):
        model = Student(dataclasses.replace(args, vocab_size=49152))
    assert model.layers["0"].feed_forward.w1.weight.shape == (ffn, dim)
    assert args.rope_scaling_args.scaling_factor == 1.0  # plain RoPE, not Llama-3.1 long-context scaling
