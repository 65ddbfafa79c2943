"""Innovation vouchers (Shanghai, seed 001): public vouchers pay part of an SME's spending on technology services.

(A stub: registered, with no parameters and no hooks yet; its module is being written.)
"""

from __future__ import annotations

from dataclasses import dataclass

NAME = "vouchers"
SECTION = "voucher"


@dataclass
class Params:
    pass
