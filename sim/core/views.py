"""Agents as views of their row of the shared state, with nothing of the model imported.

:mod:`sim.engines.mesa.agents` (firms and their projects, universities, brokers) and the instruments' own agents (an
insurer, a lender) both build on these; keeping them here lets an instrument module
define its agent without importing the model's agents, which import the instruments.

Mesa itself is imported only when the Mesa engine builds its agents (:func:`mesa_class`): importing it takes a
second, which every command (a config error, a Numba run, a Slurm job) would otherwise pay.
"""

from __future__ import annotations

import functools


def column(array: str, doc: str = ""):
    """An attribute that is this agent's element of the state array ``array``."""

    def get(self):
        return getattr(self.model.arrays, array)[self.index]

    def set_(self, value):
        getattr(self.model.arrays, array)[self.index] = value

    return property(get, set_, doc=doc or array)


class InstrumentAgent:
    """An agent an instrument adds (an insurer, a lender): a view of its row of the state, like the model's own.

    An instrument module lists its classes in ``MESA_AGENTS`` ({agent kind: class}); the
    model creates ``count`` of each (:func:`sim.core.state.agent`) as ``model.<kind>s``, each a
    ``mesa.Agent`` too (:func:`mesa_class`). Their decisions are the instrument's hooks, shared with the Numba engine.
    """

    def __init__(self, model, index: int):
        super().__init__(model)   # mesa.Agent's, next in the order of mesa_class(cls)
        self.index = index

    def cash(self, account_class: int) -> int:
        """The money in this agent's account of ``account_class``."""
        arrays = self.model.arrays
        return int(arrays.balance[arrays.acct_base[account_class] + self.index])


@functools.lru_cache(maxsize=None)
def mesa_class(cls: type) -> type:
    """``cls`` (an :class:`InstrumentAgent` subclass) as a Mesa agent: the class the Mesa engine instantiates."""
    import mesa

    return type(cls.__name__, (cls, mesa.Agent), {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                                 "__doc__": cls.__doc__})
