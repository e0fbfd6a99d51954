"""The speed / accuracy Pareto front: which candidates no other one beats on both axes."""
from __future__ import annotations

from typing import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (speed, error) points (higher speed and lower error are better): True where no other
    point is at least as fast and at least as accurate and strictly better on one of the two.
    Equal points are both on the front."""
    on_front = []
    for i, (speed, error) in enumerate(points):
        dominated = any(s >= speed and e <= error and (s > speed or e < error)
                        for j, (s, e) in enumerate(points) if j != i)
        on_front.append(not dominated)
    return on_front
