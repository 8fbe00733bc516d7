"""The arms of the paired benchmark: what one block of steps runs, and the plan the driver hands the trainer.

An arm is LETTrainer's own teaching step with some of its pieces replaced by stand-ins that do nothing (the
breakdown's cumulative arms), torchtitan's own step with the teacher kept loaded (`plain`), or the plain step plus a
known cost (`plain+forward`, to check that the method finds one). The trainer that runs them is paired_trainer.py;
this module is data only (no torch), so the driver starts at once.
"""

import json
from dataclasses import dataclass, replace
from pathlib import Path

PLAN_ENV = "LET_BENCH_PLAN"
"""Environment variable: the plan (JSON) the driver wrote; the trainer writes its block times next to it."""


@dataclass(frozen=True)
class Arm:
    """What one arm's step runs. teaching=False is torchtitan's own step; the rest switch LET's pieces on."""

    teaching: bool = True
    teacher: bool = True
    """The teacher forward runs (else its first output is reused)."""
    mapping: bool = True
    """The token map's work (else the identity: for one tokenizer the map is the identity anyway)."""
    term: bool = True
    """The teacher term: its hook on block k, its forward and its backward (else the loss is the CE alone)."""
    guard: bool = True
    """The non-finite guard: its isfinite marks and its one host sync per step."""
    stop_rule: bool = True
    """The stop rule's per-step check (a no-op for stop_when = "step")."""
    extra_forward: bool = False
    """One extra student forward without grad: a known cost, for checking the method."""


_NOTHING = Arm(teacher=False, mapping=False, term=False, guard=False, stop_rule=False)
ARMS: dict[str, Arm] = {
    "plain": replace(_NOTHING, teaching=False),
    "skeleton": _NOTHING,
    "+teacher": replace(_NOTHING, teacher=True),
    "+mapping": replace(_NOTHING, teacher=True, mapping=True),
    "+term": Arm(guard=False, stop_rule=False),
    "+guard": Arm(stop_rule=False),
    "let": Arm(),
    "plain+forward": replace(_NOTHING, teaching=False, extra_forward=True),
}
"""Arm name -> what it runs. `skeleton` is LET's step with every piece stood in for: its own bookkeeping."""
PAIRED = ["plain", "let"]
BREAKDOWN = ["plain", "skeleton", "+teacher", "+mapping", "+term", "+guard", "let"]
"""Cumulative: each arm adds one piece to the one before; the last is LETTrainer's step as it trains."""
PART_NAMES = {
    "skeleton": "LET step's bookkeeping (not a named part)",
    "+teacher": "teacher forward",
    "+mapping": "token mapping",
    "+term": "term forward + backward",
    "+guard": "non-finite guard",
    "let": "stop-rule check",
}
"""Breakdown arm -> the part its difference from the previous arm measures."""


# ---- the plan ---------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    arms: list[str]
    blocks: list[int]
    """Arm index of each block, in order."""
    block_steps: int
    out: str
    """Where the trainer writes its block records (JSON)."""
    lead_in_steps: int = 1
    """Each block's first steps, run but not clocked: they pay for switching arms (paired_stats.py says why)."""

    def __post_init__(self):
        if not 0 <= self.lead_in_steps < self.block_steps:
            raise ValueError(f"lead_in_steps={self.lead_in_steps}: a block of {self.block_steps} steps needs a "
                             "clocked step after its lead-in")

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        return cls(**json.loads(Path(path).read_text()))

    @property
    def steps(self) -> int:
        return len(self.blocks) * self.block_steps

    def block_of(self, step: int) -> int:
        return (step - 1) // self.block_steps
