"""Map a function over items, in order: in local processes or as Slurm job arrays (submitit).

Used by the calibration (``sim.analysis.calibration``) and the exploratory analyses (``sim.analysis.explore``):
items are evaluated independently and returned in order, so results never depend on where
or in how many processes they ran.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Optional

from ..core.config import ConfigError


def _fork_ok() -> bool:
    from .parallel import fork_is_safe

    return fork_is_safe()


def _call_chunk(payload: bytes, chunk: list):
    """Run ``fn(item)`` for each item of a chunk; ``fn`` arrives cloudpickled (a closure of pyabc's included)."""
    import cloudpickle

    fn = cloudpickle.loads(payload)
    return [fn(item) for item in chunk]


class Executor:
    """Maps a function over items in chunks, in order: locally in processes, or as Slurm jobs (submitit).

    ``kind="local"``: ``workers`` processes, forked from this one when that is safe (they
    inherit the loaded kernels and start in milliseconds), else spawned. ``kind="slurm"``:
    one Slurm job array per map through submitit, ``slurm`` holding its parameters
    (partition, timeout_min, cpus_per_task, mem_gb, folder, ...). Results never depend on
    the kind or the number of processes: items are evaluated independently and returned in order.
    """

    def __init__(self, kind: str = "local", workers: int = 1, slurm: Optional[dict] = None, chunks_per_worker: int = 4):
        if kind not in ("local", "slurm"):
            raise ConfigError(f"executor = {kind!r}: must be local or slurm")
        self.kind, self.workers, self.slurm = kind, int(workers), dict(slurm or {})
        self.chunks_per_worker = 1 if kind == "slurm" else chunks_per_worker  # a job per worker: jobs start slowly
        self._pool = None

    def map(self, fn: Callable, items: list) -> list:
        import cloudpickle

        if not items:
            return []
        if self.kind == "local" and (self.workers <= 1 or len(items) == 1):
            return [fn(x) for x in items]
        n_chunks = min(len(items), self.workers * self.chunks_per_worker)
        size = -(-len(items) // n_chunks)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        payload = cloudpickle.dumps(fn)
        if self.kind == "slurm":
            return [x for part in self._slurm_map(payload, chunks) for x in part]
        if self._pool is None:
            method = "fork" if _fork_ok() else "spawn"
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context(method))
        futures = [self._pool.submit(_call_chunk, payload, c) for c in chunks]
        return [x for f in futures for x in f.result()]

    def _slurm_map(self, payload: bytes, chunks: list) -> list:
        import submitit

        opts = dict(self.slurm)
        folder = opts.pop("folder", "slurm_jobs")
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        ex.update_parameters(**{("slurm_" + k if k in ("partition", "array_parallelism") else k): v
                                for k, v in opts.items() if v is not None})
        jobs = ex.map_array(_call_chunk, [payload] * len(chunks), chunks)
        return [j.result() for j in jobs]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
