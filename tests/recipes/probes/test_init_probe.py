import pytest
import torch
from torch import nn

from recipes.probes.init_probe import embedding_share, main
from tests.support import REPO


class Doubling(nn.Module):
    """A stand-in student: embeddings, then blocks that each double their input."""

    def __init__(self) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(16, 8)
        self.layers = nn.ModuleDict({str(i): nn.Identity() for i in range(3)})

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.tok_embeddings(tokens)
        for block in self.layers.values():
            h = block(h) * 2
        return h


def test_embedding_share_by_hand():
    model = Doubling()
    share = embedding_share(model, 0, torch.arange(16)[None])
    # the hook sees block 0's own output, before the doubling: the embedding itself
    assert share == pytest.approx({"cosine": 1.0, "added": 0.0}, abs=1e-6)
    model.layers["1"] = nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        model.layers["1"].weight.copy_(-torch.eye(8) / 2)  # block 1 sees 2e and returns -e: cosine -1, added 2
    assert embedding_share(model, 1, torch.arange(16)[None]) == pytest.approx({"cosine": -1.0, "added": 2.0})


def test_the_debug_student_at_torchtitans_init_is_its_embedding_at_block_1_and_hf_is_not(capsys):
    text = main(["--config", str(REPO / "train_configs/let_debug.toml"), "--flavors", "debugmodel"])
    rows = {line.split("|")[2].strip(): line.split("|") for line in text.splitlines()[2:]}
    assert float(rows["torchtitan"][4]) > 0.99 and float(rows["torchtitan"][5]) < 0.05
    assert float(rows["hf"][4]) < 0.95 and float(rows["hf"][5]) > 0.2
    assert text in capsys.readouterr().out
