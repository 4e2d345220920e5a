"""Outputs a caller still holds: kept for the whole run and re-verified at its end.

A pipeline keeps the frames a decoder returned until it has encoded or shown them --
seconds, sometimes the whole stream. A decoder that reuses an output buffer, or is still
writing into a returned tensor from a background thread or an unsynchronized stream,
changes those frames under the caller. :class:`OutputHold` keeps early outputs of every
check (each exactly as returned, with a private bitwise copy taken when the call
returned) for as long as the executor runs the decoder's checks, then re-verifies them
all at once: writes landing long after return are caught at no extra wall time, because
the other checks run meanwhile. An output kept with a minimum age (the profile's
``output_hold_s``) is not re-verified before it reached that age.

Memory is bounded: outputs past :data:`BYTE_BUDGET` are not kept (the kit's latent
sizes make outputs small: thousands fit).
"""

from __future__ import annotations

from time import monotonic as _monotonic, sleep as _sleep  # the real clocks, whatever patches ``time`` later
from dataclasses import dataclass

import torch

from conformance.checks.harness.bitwise import bitwise_equal

__all__ = ["BYTE_BUDGET", "HeldOutput", "OutputHold", "late_changes"]

#: Bytes of outputs (and their private copies) one hold keeps at most.
BYTE_BUDGET = 64 * 1024 * 1024


@dataclass
class HeldOutput:
    """One returned output: what returned it, the tensor as returned, its copy then."""

    check_id: str
    what: str
    raw: torch.Tensor
    saved: torch.Tensor
    returned_at: float
    min_age_s: float


class OutputHold:
    """Outputs kept across a decoder's checks in one process (see the module docstring)."""

    def __init__(self, byte_budget: int = BYTE_BUDGET) -> None:
        self.byte_budget = byte_budget
        self.bytes = 0
        self.outputs: list[HeldOutput] = []

    def keep(self, check_id: str, what: str, raw: torch.Tensor, saved: torch.Tensor, *,
             returned_at: float | None = None, min_age_s: float = 0.0) -> bool:
        """Keep ``raw`` (exactly as returned) with its copy ``saved``; ``False`` when over budget."""
        size = 2 * raw.numel() * raw.element_size()
        if self.bytes + size > self.byte_budget:
            return False
        self.bytes += size
        self.outputs.append(HeldOutput(check_id, what, raw, saved,
                                       _monotonic() if returned_at is None else returned_at, min_age_s))
        return True

    def wait_due(self) -> float:
        """Sleep until every kept output reached its minimum age; the seconds slept."""
        now = _monotonic()
        due = max((held.returned_at + held.min_age_s - now for held in self.outputs), default=0.0)
        if due > 0:
            _sleep(due)
        return max(due, 0.0)

    def changed(self) -> list[tuple[HeldOutput, float]]:
        """Every kept output that no longer equals its copy, bitwise, with its age in
        seconds (after synchronizing the devices the outputs live on)."""
        for device in {held.raw.device for held in self.outputs if held.raw.device.type == "cuda"}:
            torch.cuda.synchronize(device)
        now = _monotonic()
        return [(held, now - held.returned_at) for held in self.outputs if not bitwise_equal(held.raw, held.saved)]


def late_changes(hold: OutputHold, *, time_axis: int) -> list[dict[str, object]]:
    """Wait until the kept outputs are due, re-verify them, and describe each change as
    plain values (``check_id``, ``what``, ``age_s``, ``changed``); ``time_axis`` is the
    output's time axis, to name the pixel frames that changed."""
    hold.wait_due()
    changes = []
    for held, age in hold.changed():
        if held.raw.shape != held.saved.shape:
            changed = f"its shape changed from {list(held.saved.shape)} to {list(held.raw.shape)}"
        else:
            differs = (held.raw != held.saved) & ~(torch.isnan(held.raw) & torch.isnan(held.saved))
            others = tuple(d for d in range(differs.dim()) if d != time_axis)
            frames = torch.nonzero(differs.any(dim=others)).flatten().tolist() if others else [0]
            changed = f"pixel frames {frames[:10]} of it changed"
        changes.append({"check_id": held.check_id, "what": held.what, "age_s": round(age, 3), "changed": changed})
    hold.outputs.clear()
    return changes
