"""How sparse the model is at each step: the cubic schedule of Zhu & Gupta (2017).

Sparsity rises fast while the weights still hold redundant blocks and slowly near the target, when each
further block removed costs more; the last part of the run fine-tunes at the final sparsity, with the
mask fixed, so distillation can repair what the last pruning steps broke.
"""

from __future__ import annotations


def cubic_sparsity(step: int, final: float, prune_end: int, initial: float = 0.0, prune_start: int = 0) -> float:
    """Target sparsity after ``step`` optimizer steps: ``initial`` before ``prune_start``, ``final`` from
    ``prune_end`` on, and ``final + (initial - final) * (1 - progress)^3`` between."""
    if step <= prune_start:
        return initial
    if step >= prune_end:
        return final
    progress = (step - prune_start) / (prune_end - prune_start)
    return final + (initial - final) * (1.0 - progress) ** 3


def learning_rate(step: int, total: int, peak: float, warmup: int, decay_start: int) -> float:
    """Linear warm-up to ``peak``, constant while pruning, then linear decay to 0 over the fine-tuning."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if step < decay_start or total <= decay_start:
        return peak
    return peak * max(0.0, (total - step) / (total - decay_start))
