"""Income-share reform for inventors (seeds 001, 004): a larger inventors' share brings their further work.

(A stub: registered, with no parameters and no hooks yet; its module is being written.)
"""

from __future__ import annotations

from dataclasses import dataclass

NAME = "income_share"
SECTION = "inventors"


@dataclass
class Params:
    pass
