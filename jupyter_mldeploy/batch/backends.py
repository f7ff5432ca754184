"""Where mini-batches run, chosen by name: ``loky`` (joblib's process pool) or ``dask`` (a Dask cluster).

Both are used through one interface, :class:`concurrent.futures.Executor`: the driver submits
:func:`~jupyter_mldeploy.batch.worker.score_mini_batch` and waits on the futures, whatever the backend.
That is how joblib itself runs on either (``joblib/_dask.py`` wraps ``Client.submit`` behind the backend
interface its loky backend also implements); here the seam is the standard executor, which loky's
``ProcessPoolExecutor`` is and ``distributed.Client.get_executor()`` returns.

* ``loky``: ``process_count_per_node`` worker processes on this machine (default: the core count), started
  by the driver, running the driver's interpreter; each loads the script and calls ``init()`` as it starts
  (:func:`~jupyter_mldeploy.batch.worker.preload`), and they stop with the driver.
* ``dask``: ``scheduler="tcp://host:port"`` connects to a running cluster; ``"local"`` (the default) starts
  a ``LocalCluster`` of ``process_count_per_node`` single-threaded worker processes on 127.0.0.1, as
  ``distributed.deploy.local`` does, without its dashboard; they too stop with the driver (distributed
  ends a worker process whose parent is gone). Workers must import ``jupyter_mldeploy``, pandas and what
  the script imports, and see the input at the driver's paths; workers of a ``tcp://`` cluster that do not
  see the job folder get its app folder uploaded (:mod:`~jupyter_mldeploy.batch.dask_upload`; see
  docs/batch.md).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from jupyter_mldeploy.batch.worker import ScriptSpec, preload
from jupyter_mldeploy.errors import InvalidArgument

BACKENDS = ("loky", "dask")
LOCAL_SCHEDULER = "local"


def check_backend(backend: str, scheduler: str | None, node_count: int) -> None:
    """Check a backend name and its scheduler before a job is recorded.

    Raises:
        InvalidArgument: An unknown backend; a scheduler with loky; a scheduler that is neither ``"local"``
            nor ``tcp://host:port``; ``node_count`` above 1 with loky; dask not installed.
    """
    if backend not in BACKENDS:
        raise InvalidArgument(f"backend must be 'loky' (this machine) or 'dask' (a Dask cluster), not {backend!r}.")
    if backend == "loky":
        if scheduler is not None:
            raise InvalidArgument("scheduler is for backend='dask'; loky runs on this machine (leave scheduler unset).")
        if node_count != 1:
            raise InvalidArgument(f"node_count={node_count}: loky runs on one machine, so node_count must be 1; use backend='dask' for a cluster.")
        return
    if scheduler is not None and scheduler != LOCAL_SCHEDULER and not str(scheduler).startswith(("tcp://", "tls://", "inproc://")):
        raise InvalidArgument(f"scheduler must be 'local' or a Dask scheduler address such as 'tcp://127.0.0.1:8786', not {scheduler!r}.")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InvalidArgument("backend='dask' needs dask.distributed: pip install 'jupyter-mldeploy[dask]'.") from None


def worker_count(processes: int | None) -> int:
    """``process_count_per_node``, or the core count when it is None (v1's default)."""
    return processes or os.cpu_count() or 1


def exit_with_driver(driver_pid: int) -> None:
    """Make this loky worker exit when the driver is gone.

    loky's workers outlive a driver killed with SIGKILL (they are re-parented and keep waiting on their
    queue); a daemon thread checks every quarter second that the driver is still the parent and ends the
    worker when it is not, so a killed job leaves no process behind. (A ``LocalCluster``'s worker processes
    need no such watch: distributed's ``AsyncProcess`` exits a child as soon as its parent's pipe closes.)
    """
    def watch() -> None:
        while os.getppid() == driver_pid:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-driver", daemon=True).start()


def start_loky_worker(driver_pid: int, script: ScriptSpec, logging_level: str) -> None:
    """loky's initializer: exit with the driver, then load the script and call ``init()`` at once."""
    exit_with_driver(driver_pid)
    preload(script, logging_level)


@dataclass
class OpenBackend:
    """A started backend.

    Attributes:
        executor: Where to submit mini-batch tries.
        workers: Worker slots (processes x threads): how many tries run at once.
        description: One line for the job log (``loky, 2 processes``, ``dask tcp://..., 2 workers``).
        local: Whether the workers run on this machine and see the job folder (loky, a local cluster): they
            write their part files themselves instead of sending the rows back.
        kill_workers: Whether closing kills the worker processes (loky's, which the driver owns).
        closers: What else to close (the Dask client, a local cluster).
        client: The Dask client, when the app folder was uploaded to its workers.
        uploaded: The upload's worker plugin name, removed (with the workers' copies) at close.
    """

    executor: Executor
    workers: int
    description: str
    local: bool = False
    kill_workers: bool = False
    closers: tuple[Any, ...] = ()
    client: Any = None
    uploaded: str | None = None

    def close(self) -> None:
        """Stop what this backend started (loky's processes, a local cluster, an app folder upload) and any
        try still running; leave a remote cluster running."""
        if self.kill_workers:  # loky: no try is worth waiting for once the job ends
            self.executor.shutdown(wait=True, kill_workers=True)
        else:
            self.executor.shutdown(wait=False)
        if self.uploaded is not None:
            self.client.unregister_worker_plugin(self.uploaded)
        for closer in self.closers:
            closer.close()


def open_backend(backend: str, scheduler: str | None, processes: int | None, script: ScriptSpec,
                 logging_level: str = "INFO") -> OpenBackend:
    """Start (loky, local dask) or connect to (dask ``tcp://``) the backend.

    Args:
        backend: ``"loky"`` or ``"dask"``.
        scheduler: For dask: ``"local"``/None, or a scheduler address.
        processes: ``process_count_per_node``; None for the core count.
        script: The job's script: loky workers load it and call ``init()`` as they start.
        logging_level: The job's logging level (loky workers log to the job log).

    Returns:
        OpenBackend: The executor and its size.

    Raises:
        OSError: When a scheduler cannot be reached (distributed's own message, with the address).
    """
    count = worker_count(processes)
    if backend == "loky":
        from joblib.externals.loky import ProcessPoolExecutor

        executor = ProcessPoolExecutor(max_workers=count, initializer=start_loky_worker,
                                       initargs=(os.getpid(), script, logging_level))
        # loky starts its processes on the first submit: a no-op starts them now, so their start and
        # init() overlap what the driver reads and plans before it submits mini-batches.
        executor.submit(os.getpid)
        return OpenBackend(executor, count, f"loky, {count} worker processes", local=True, kill_workers=True)
    from distributed import Client, LocalCluster

    from jupyter_mldeploy.batch.dask_upload import upload_if_unseen

    uploaded = None
    if scheduler in (None, LOCAL_SCHEDULER):
        cluster = LocalCluster(
            n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        )
        client = Client(cluster)
        closers: tuple[Any, ...] = (client, cluster)
        where = f"a local Dask cluster at {cluster.scheduler_address}"
        local = True
    else:
        client = Client(scheduler, timeout=30)
        closers = (client,)
        where = f"the Dask cluster at {scheduler}"
        local = False
        # Workers elsewhere may not see the job folder: they get the app folder (script and models).
        uploaded = upload_if_unseen(client, script.environment["AML_APP_ROOT"])
    slots = sum(client.nthreads().values()) or 1
    copy = ", app folder uploaded to the workers that do not see it" if uploaded else ""
    # pure=False: a retry of the same mini-batch must run again, not return the failed try's cached key.
    return OpenBackend(client.get_executor(pure=False), slots, f"dask on {where}, {slots} worker threads{copy}",
                       local=local, closers=closers, client=client, uploaded=uploaded)
