"""Maturation and pilot-test grants (seeds 003, 004): public grants make shelved achievements more mature.

(A stub: registered, with no parameters and no hooks yet; its module is being written.)
"""

from __future__ import annotations

from dataclasses import dataclass

NAME = "maturation"
SECTION = "maturation"


@dataclass
class Params:
    pass
