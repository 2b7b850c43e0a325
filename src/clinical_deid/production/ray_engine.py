"""The Ray engine of a run (`--engine ray`): the workers are Ray actors, on this machine or a cluster.

Why Ray: it is what the Python ML world runs batch inference on (an actor loads the model once
and takes batch after batch; Ray Data's `map_batches` does the same with a callable class),
it starts a local instance with no setup and connects to a cluster by address, and the
project's Python pieces (spaCy pipelines, the key, the outcomes) travel as they are. Ray core
actors rather than Ray Data's readers and writers: the main process keeps reading the input
and writing the outputs itself (`workers.PooledRun`), so the outputs, the resume after a kill
and the failure reports are those of the local command, byte for byte, and a bad JSON line
or an undecodable file is a failed document with its id, as locally. What the actors do is
the expensive part (tokenizer, NER, rules, surrogates); reading and writing text is not.

Connecting: `--ray-address ray://head:10001` (or `auto`, or the environment variable
RAY_ADDRESS) joins an existing cluster; without either, a local instance is started for the
run and stopped after it. On a cluster the pipeline must load on every node: an installed
package name, or a folder on storage all nodes share. The secret key travels to the actors
with their arguments: use a cluster you trust with it.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, List, Optional

from .errors import DeidError


def import_ray():
    """Ray, or a DeidError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise DeidError("--engine ray needs Ray: pip install 'clinical-deid[ray]'") from None
    return ray


def connect(address: Optional[str], cpus_needed: int) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local instance; True if this run started it.

    A local instance gets the machine's cores, or `cpus_needed` if that is more (the actors
    asked for would otherwise wait for CPUs that never come).
    """
    ray = import_ray()
    address = address or None  # ("" from a project variable: none)
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address or os.environ.get("RAY_ADDRESS"):
        try:
            ray.init(address=address, **quiet)
        except Exception as err:
            raise DeidError(f"cannot connect to the Ray cluster at {address or os.environ['RAY_ADDRESS']}: "
                            f"{type(err).__name__}") from None
        return False
    ray.init(num_cpus=max(os.cpu_count() or 1, cpus_needed), **quiet)
    return True


class _ActorBody:
    """A Ray actor's state: the worker that `factory` makes (the pipeline, loaded once)."""

    def __init__(self, factory: Callable[[], Callable]) -> None:
        self.worker = factory()

    def ready(self) -> bool:
        return True

    def process(self, items: List[Any]) -> List[Any]:
        return self.worker(items)


class RayPool:
    """`actors` Ray actors of `cpus` CPUs (and `gpus` GPUs) each, made by `factory`; blocks go to the least busy one.

    factory (Callable): makes a worker (block of items -> outcomes); pickled to the actors.
    address (Optional[str]): a cluster to join (see the module docstring).
    """

    def __init__(self, factory: Callable[[], Callable], actors: int, cpus: int, address: Optional[str],
                 gpus: float = 0) -> None:
        self.ray = import_ray()
        self.started = connect(address, actors * cpus)
        remote = self.ray.remote(num_cpus=cpus, num_gpus=gpus)(_ActorBody)
        self.actors = [remote.remote(factory) for _ in range(actors)]
        self.busy = [0] * actors
        self.size = actors
        try:  # every actor has its pipeline before the first block (and the run's timer) starts
            self.ray.get([actor.ready.remote() for actor in self.actors])
        except Exception as err:
            self.close()
            cause = getattr(err, "cause", None) or err
            reason = str(cause) if isinstance(cause, DeidError) else type(cause).__name__
            raise DeidError(f"a Ray actor could not start (its pipeline or model): {reason}") from None

    def submit(self, items: List[Any]):
        index = min(range(self.size), key=self.busy.__getitem__)
        self.busy[index] += 1
        return index, self.actors[index].process.remote(items)

    def result(self, handle) -> List[Any]:
        index, ref = handle
        try:
            return self.ray.get(ref)
        finally:
            self.busy[index] -= 1

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started:
            self.ray.shutdown()
