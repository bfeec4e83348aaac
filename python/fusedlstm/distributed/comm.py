"""MPI collectives that end the job instead of hanging.

Every collective the strategy issues is the non-blocking MPI call (Iallreduce,
Ibcast, Iallgather) polled with Test() against a deadline. A rank that dies is
normally reaped by the launcher (mpirun/srun kill the others); a rank that is
stuck, exited early, or runs a different number of steps is not, and without a
deadline the others would wait forever. Past the deadline this rank prints what
it was waiting for and calls MPI_Abort, which ends every rank of the job.

Polling: a short busy spin first (a healthy peer arrives within microseconds to
milliseconds and Test() also drives the MPI progress engine), then sleeps that
double up to 1 ms, so a rank waiting on a slow peer leaves its core to others.

Importing this module does not import mpi4py; `load_mpi()` does, with an error
that says which extra to install.
"""

import os
import signal
import sys
import threading
import time

import numpy as np

__all__ = ["load_mpi", "TimedComm", "launcher_world_size"]

# Environment variables the common launchers set for each rank (Open MPI's
# mpirun, MPICH/Intel MPI's hydra, PMIx-based launchers, Slurm's srun).
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS")


def launcher_world_size():
    """Ranks the launcher started, read from its environment (1 when not launched by one).

    Cheap and import-free, so the CLI can decide whether to train data-parallel
    without initialising MPI in a plain single-process run.
    """
    for var in _SIZE_VARS:
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return 1


def load_mpi():
    """`mpi4py.MPI`, or ImportError naming the extra to install."""
    try:
        from mpi4py import MPI  # optional dependency (the mpi extra): only an MPIStrategy needs it
    except ImportError as exc:
        raise ImportError(
            "fusedlstm.distributed needs mpi4py and an MPI library: pip install 'fusedlstm[mpi]' "
            "(mpi4py and the Open MPI wheel), or mpi4py with your cluster's MPI "
            f"(see docs/distributed.md). Import error: {exc}") from exc
    except RuntimeError as exc:  # mpi4py's wheel found no libmpi to load
        raise ImportError(
            "mpi4py is installed but cannot load an MPI library: pip install 'fusedlstm[mpi]' "
            f"(adds the Open MPI wheel), or load your cluster's MPI module. mpi4py said: {exc}") from exc
    return MPI


class TimedComm:
    """A private duplicate of a communicator whose collectives have a deadline.

    Args:
        comm: an mpi4py communicator (duplicated, so these collectives never match
            messages of the user's own code on the same communicator).
        timeout: seconds a collective may wait for the other ranks before the job
            is aborted.
    """

    def __init__(self, MPI, comm, timeout):
        self.MPI = MPI
        self.comm = comm.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = float(timeout)

    def tag(self):
        return f"rank {self.rank} of {self.size}"

    # --- waiting --------------------------------------------------------------------------

    def wait(self, req, what):
        """Complete `req` or abort the job after `timeout` seconds."""
        if req.Test():
            return
        start = time.monotonic()
        deadline = start + self.timeout
        warn_at = start + self.timeout / 5 if self.timeout >= 50 else None
        spins, pause = 0, 0.0
        while not req.Test():
            spins += 1
            if spins < 200:
                continue
            now = time.monotonic()
            if now > deadline:
                self.abort(
                    f"{what} did not complete within {self.timeout:g} s: another rank died, is stuck, "
                    "or runs a different number of steps (different data, epochs or code path). "
                    "Set MPIStrategy(timeout=...) or FUSEDLSTM_MPI_TIMEOUT for longer waits.")
            if warn_at is not None and now > warn_at:
                warn_at = None
                _say(f"{self.tag()}: still waiting for the other ranks in {what} after "
                     f"{now - start:.0f} s (the job is aborted after {self.timeout:g} s)")
            time.sleep(pause)
            pause = min(max(2 * pause, 1e-5), 1e-3)

    def abort(self, message):
        """Print `message` for this rank and end every rank of the job."""
        _say(f"{self.tag()}: {message} Aborting the job (MPI_Abort).")
        try:
            self.comm.Abort(1)
        finally:
            os._exit(1)

    # --- collectives ----------------------------------------------------------------------

    def allreduce_sum(self, buf, what):
        """In-place sum of the contiguous array `buf` over all ranks."""
        if self.size > 1:
            self.wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM), what)

    def bcast(self, buf, what, root=0):
        """Overwrite the contiguous array `buf` with root's in place."""
        if self.size > 1:
            self.wait(self.comm.Ibcast(buf, root=root), what)

    def allgather(self, arr, what):
        """Every rank's `arr` (same shape and dtype everywhere) stacked: shape (size,) + arr.shape."""
        arr = np.ascontiguousarray(arr)
        out = np.empty((self.size,) + arr.shape, dtype=arr.dtype)
        if self.size == 1:
            out[0] = arr
            return out
        self.wait(self.comm.Iallgather(arr, out), what)
        return out

    def allgather_bytes(self, data, what):
        """Every rank's `data` (bytes of any length), as a list in rank order."""
        lengths = self.allgather(np.array([len(data)], dtype=np.int64), what)[:, 0]
        if self.size == 1:
            return [bytes(data)]
        send = np.frombuffer(bytes(data), dtype=np.uint8)
        recv = np.empty(int(lengths.sum()), dtype=np.uint8)
        counts = [int(n) for n in lengths]
        displs = [int(d) for d in np.concatenate([[0], np.cumsum(lengths)[:-1]])]
        self.wait(self.comm.Iallgatherv(send, [recv, counts, displs, self.MPI.BYTE]), what)
        return [recv[d:d + n].tobytes() for d, n in zip(displs, counts)]

    def bcast_bytes(self, data, what, root=0):
        """Root's `data` (bytes) on every rank; other ranks' `data` is ignored."""
        if self.size == 1:
            return bytes(data)
        n = np.array([len(data) if self.rank == root else 0], dtype=np.int64)
        self.bcast(n, what, root)
        buf = np.frombuffer(bytes(data), dtype=np.uint8).copy() if self.rank == root else np.empty(int(n[0]), np.uint8)
        self.bcast(buf, what, root)
        return buf.tobytes()


def _say(text):
    try:
        sys.stderr.write(f"fusedlstm.distributed: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


_GUARDS_INSTALLED = [False]


def install_job_guards(comm):
    """Make a failure on one rank end the whole job, with a message on every rank.

    * An uncaught exception on any rank prints its traceback and then MPI_Abort, so
      the other ranks do not wait in their next collective (mpi4py's own
      `python -m mpi4py` does the same).
    * SIGTERM (how mpirun and srun stop the surviving ranks when one has died) prints
      a line saying so, then terminates as SIGTERM would. Installed only when no
      other handler is set, and only from the main thread.
    """
    if _GUARDS_INSTALLED[0] or comm.size < 2:
        return
    _GUARDS_INSTALLED[0] = True
    previous = sys.excepthook

    def excepthook(kind, value, tb):
        previous(kind, value, tb)
        comm.abort(f"uncaught {kind.__name__} (traceback above) ends every rank, so that none waits "
                   "forever for this one.")

    sys.excepthook = excepthook
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def on_sigterm(signum, frame):
            _say(f"{comm.tag()}: stopped by SIGTERM from the MPI launcher or the batch system "
                 "(when another rank failed, its error is printed above or by the launcher).")
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, on_sigterm)
