"""Expert visits and matching events (seeds 000, 002, 004): publicly organised search, paid per visit or event.

(A stub: registered, with no parameters and no hooks yet; its module is being written.)
"""

from __future__ import annotations

from dataclasses import dataclass

NAME = "expert_visits"
SECTION = "experts"


@dataclass
class Params:
    pass
