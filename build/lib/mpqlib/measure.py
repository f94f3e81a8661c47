"""What a block of work cost, and whether the machine was shared while it ran.

A wall-clock figure alone does not survive a busy machine: a search measured while other jobs
share the cores can take ten times as long as the same search alone. :class:`Meter` therefore
records, beside wall time and peak memory, the process's CPU time, the threads torch used, the
machine's load average and the time the process's threads spent waiting for a core, and sets
``contended`` when the figure should not be printed as a result (see :func:`contention`).

    with Meter() as m:
        run_search()
    m.record()   # {"seconds", "cpu_seconds", "cpu_utilisation", "threads", "load_start", ...}
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

import torch

LOAD_MARGIN = 0.5        # runnable tasks beyond our own threads that count as a shared machine
RUNQUEUE_LIMIT = 0.10    # share of the run our threads may wait for a core before it counts as shared
UTILISATION_FLOOR = 0.5  # contended when the CPU share falls below this fraction of the expected one


def rss_bytes() -> int:
    """The process's resident memory now (Linux), else its lifetime peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the process's lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load_1min() -> float | None:
    """The machine's 1-minute load average (runnable + uninterruptible tasks), None where unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def cpu_seconds() -> float:
    """CPU time (user + system) of this process's threads and of its waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def runqueue_seconds() -> dict[str, float]:
    """Per live thread of this process, seconds it has spent runnable but waiting for a core
    (``/proc/self/task/*/schedstat``, second field); empty where the kernel does not say."""
    out = {}
    for task in Path("/proc/self/task").glob("*"):
        try:
            out[task.name] = int((task / "schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
    return out


def contention(*, load_max: float | None, threads: int, utilisation: float | None = None,
               expected_utilisation: float | None = None, runqueue_share: float | None = None) -> str | None:
    """Why a measurement counts as taken on a shared machine, or None when it does not.

    The rule (any one suffices):

    * ``load``: the highest 1-minute load average seen during the run exceeds the torch threads
      by more than :data:`LOAD_MARGIN` -- other runnable work beyond our own threads. This is
      conservative: on a 2-vCPU machine the two vCPUs are often hyperthreads of one core, so
      even a neighbour on the "free" core slows us. The load average lags (1-minute decay, kernel
      update every 5 s), so a short run just after a busy period is flagged too: re-measure it.
    * ``runqueue``: our threads waited for a core longer than :data:`RUNQUEUE_LIMIT` of the
      wall time (summed over threads, per thread of torch) -- the direct sign of being preempted.
    * ``cpu share``: with an ``expected_utilisation`` given (a CPU-bound search expects ~1), the
      measured CPU share cpu / wall / threads fell below :data:`UTILISATION_FLOOR` of it. Without
      an expectation this criterion is off, since I/O, the ILP solver and GPU waits lower the
      share legitimately.
    """
    reasons = []
    if load_max is not None and load_max > threads + LOAD_MARGIN:
        reasons.append(f"load {load_max:.2f} > {threads} threads + {LOAD_MARGIN}")
    if runqueue_share is not None and runqueue_share > RUNQUEUE_LIMIT:
        reasons.append(f"threads waited for a core {runqueue_share:.0%} of the run")
    if (expected_utilisation is not None and utilisation is not None
            and utilisation < UTILISATION_FLOOR * expected_utilisation):
        reasons.append(f"CPU share {utilisation:.2f} < {UTILISATION_FLOOR} x expected {expected_utilisation:.2f}")
    return "; ".join(reasons) or None


class Meter:
    """Measures a block: wall and CPU time, CPU share, load, peak memory (RSS sampled every
    ``interval`` seconds; on CUDA also ``torch.cuda.max_memory_allocated``), and contention.

    ``expected_utilisation``: the CPU share a CPU-bound run of this block should reach (None:
    do not judge contention by the CPU share, see :func:`contention`). Nested meters on CUDA
    share the device's peak counter: the inner one resets it.
    """

    def __init__(self, *, interval: float = 0.02, expected_utilisation: float | None = None):
        self.interval = interval
        self.expected_utilisation = expected_utilisation

    def __enter__(self) -> "Meter":
        self.threads = torch.get_num_threads()
        self.load_start = load_1min()
        self.load_max = self.load_start
        self.start_rss = rss_bytes()
        self.peak, self._stop = self.start_rss, threading.Event()
        self._cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        self._wait0 = runqueue_seconds()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.cpu0 = cpu_seconds()
        self.t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())
            ticks += 1
            if ticks % 25 == 0:  # the load average changes every 5 s: no need to read it 50 times a second
                self._see_load()

    def _see_load(self) -> None:
        load = load_1min()
        if load is not None:
            self.load_max = load if self.load_max is None else max(self.load_max, load)

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = cpu_seconds() - self.cpu0
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self._see_load()
        self.load_end = load_1min()
        wait1 = runqueue_seconds()
        waited = sum(w - self._wait0.get(t, 0.0) for t, w in wait1.items())
        self.runqueue_share = waited / self.seconds / self.threads if wait1 and self.seconds > 0 else None
        self.cuda_peak = (torch.cuda.max_memory_allocated()
                          if torch.cuda.is_available() and torch.cuda.is_initialized() else None)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2 ** 20

    @property
    def cpu_utilisation(self) -> float:
        """CPU time / wall time / torch threads: 1 when every thread computed all the time."""
        return self.cpu_seconds / self.seconds / self.threads if self.seconds > 0 else 0.0

    @property
    def contention(self) -> str | None:
        return contention(load_max=self.load_max, threads=self.threads, utilisation=self.cpu_utilisation,
                          expected_utilisation=self.expected_utilisation, runqueue_share=self.runqueue_share)

    @property
    def contended(self) -> bool:
        return self.contention is not None

    def record(self) -> dict:
        """The measurement as a JSON-ready dict (the cost fields of every search record)."""
        r2 = lambda v: None if v is None else round(v, 2)  # noqa: E731
        return {"seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
                "cpu_utilisation": round(self.cpu_utilisation, 3), "threads": self.threads,
                "load_start": r2(self.load_start), "load_end": r2(self.load_end), "load_max": r2(self.load_max),
                "runqueue_share": None if self.runqueue_share is None else round(self.runqueue_share, 4),
                "peak_memory_mb": round(self.peak_mb, 1),
                # what the process held when the block began (data, model, earlier work): the peak
                # minus this is what the block itself added
                "start_memory_mb": round(self.start_rss / 2 ** 20, 1),
                "cuda_peak_mb": None if self.cuda_peak is None else round(self.cuda_peak / 2 ** 20, 1),
                "contended": self.contended, "contention": self.contention}
