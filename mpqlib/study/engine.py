"""Where the pipeline's steps run: here, on a local Dask cluster, or on a running one.

A step is computed by :func:`compute` wherever it lands: the worker builds the step's
:class:`~mpqlib.study.experiments.Experiments` (which sets the profile's torch thread count), reads
the cache it can see, computes the step into an in-memory :class:`~mpqlib.study.experiments.Overlay`
and sends the new records back; the driver stores them (create-only, atomically) as they
arrive. So a worker on another machine needs the repository's checkpoints and the data sets,
but no access to the driver's cache, and a result never depends on where or in which order the
grid ran. Why Dask and what it costs: book/reproduce.md, "Running the study on many cores".
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from ..errors import ConfigError
from .experiments import Experiments, Overlay, Task
from .profiles import Profile
from .steps import kind

_WORKER: dict[tuple[str, str], Experiments] = {}  # per process: one Experiments per (profile, model)


def compute(p: Profile, task: Task, *inputs: list[dict]) -> list[dict]:
    """Compute ``task`` under profile ``p`` in this process; the new cache records it made.
    ``inputs``: the records of the steps it needs (:attr:`Task.needs`), as their own
    :func:`compute` returned them (a worker need not see the driver's cache to read them)."""
    from . import objections

    if task.step == "train":  # the class-subset model of chapter 7: a model, not an Experiments step
        return [{"model_name": task.model, "stored": objections.train_record(p)}]
    ident = (repr(p), task.model)
    if ident not in _WORKER:
        ex = objections.experiments(p, task.model)
        ex.cache = Overlay(ex.cache.root)
        _WORKER[ident] = ex
    ex = _WORKER[ident]
    ex.cache.new.clear()
    given = [r["stored"] for records in inputs for r in records if r["model_name"] == task.model]
    for stored in given:
        ex.cache.put(stored)
    ex.execute(task)
    inputs_read = {(stored["step"], stored["key"]) for stored in given}
    return [{"model_name": task.model, "stored": stored} for ident, stored in ex.cache.new.items()
            if ident not in inputs_read]


Execute = Callable[[list[Task]], Iterator[dict]]


@contextlib.contextmanager
def executor(p: Profile, workers: int | None = None, cluster: str | None = None) -> Iterator[Execute]:
    """A function running tasks and yielding their records as each task finishes: in this
    process (no ``workers``, no ``cluster``), on a LocalCluster of ``workers`` processes with
    one thread each, or on the Dask scheduler at ``cluster`` (``tcp://host:8786``)."""
    if workers is not None and cluster is not None:
        raise ConfigError("give --workers N (a local cluster) or --cluster ADDRESS (a running one), not both")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers takes a positive number of processes, not {workers}")
    if workers is None and cluster is None:
        yield lambda tasks: (r for t in tasks for r in compute(p, t))
        return
    from dask.distributed import Client, LocalCluster, as_completed

    with contextlib.ExitStack() as stack:
        if cluster is None:
            local = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                     dashboard_address=None))
            client = stack.enter_context(Client(local))
        else:
            client = stack.enter_context(Client(cluster))
        profile = client.scatter(p, broadcast=True)

        def execute(tasks: list[Task]) -> Iterator[dict]:
            # By the kinds' declared order (mpqlib.study.steps): searches before QAT runs, so the
            # last wave is not one long step. A blocked task takes the futures of the steps it
            # needs: Dask starts it once they are done, with their records.
            futures: dict[str, object] = {}
            for t in sorted(tasks, key=lambda t: (bool(t.needs), kind(t.step).order)):
                needs = [futures[k] for k in t.needs if k in futures]
                futures[t.key] = client.submit(compute, profile, t, *needs, key=f"{t.step}-{t.model}-{t.key}",
                                               retries=2, pure=False)
            for future in as_completed(list(futures.values())):
                yield from future.result()

        yield execute


__all__ = ["compute", "executor"]
