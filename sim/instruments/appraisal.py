"""Appraisal of universities on conversions (seeds 001, 003, 004): conversions enter the universities' evaluation.

(A stub: registered, with no parameters and no hooks yet; its module is being written.)
"""

from __future__ import annotations

from dataclasses import dataclass

NAME = "appraisal"
SECTION = "appraisal"


@dataclass
class Params:
    pass
