"""IP pledge financing with a public guarantee fund (seed 003): lenders lend against patents to firms short of cash.

(A stub: registered, with no parameters and no hooks yet; its module is being written.)
"""

from __future__ import annotations

from dataclasses import dataclass

NAME = "ip_pledge"
SECTION = "pledge"


@dataclass
class Params:
    pass
