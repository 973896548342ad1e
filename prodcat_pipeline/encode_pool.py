"""Encoding in forked worker processes (one single-thread encoder per core) or in-process."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import deque

from .config import PipelineConfig
from .errors import ProdcatError

# The USE encoder's forward pass is many small numpy ops and its tokenizer is pure Python, so two BLAS
# threads in one process leave a core idle much of the time; one single-threaded worker per core is
# faster. Workers are forked after the model is built, so each inherits it instead of reloading it, and
# they own no files: the parent assembles shards in order and the writer thread saves them.
#
# The pool is our own rather than multiprocessing.Pool so that Ctrl-C and a dying parent are clean:
# workers ignore SIGINT (the parent alone handles it), die with the parent (PR_SET_PDEATHSIG) and exit
# silently when their pipe breaks; the parent SIGKILLs them whenever it leaves by an exception and never
# waits on a worker without a time limit, so nothing blocks on a half-sent result.

_WORKER_MODEL = None

_QUEUE_BYTES = 32 * 1024  # a busy worker is sent a second piece only if it is this small (see _ForkPool)
_STOP_SECONDS = 5.0  # a normal close waits this long for the workers to exit, then kills them
_REAP_SECONDS = 2.0  # how long to wait for SIGKILLed workers to be reaped
_DONE = object()


def encode_workers(model, config: PipelineConfig, device: str) -> int:
    """Processes to encode with: `encoder.workers`, or (auto) one per core for the numpy USE encoder on
    a machine that can fork, else 1 (torch encoders already use every core from one process)."""
    import multiprocessing as mp

    if config.encoder.workers is not None:
        return max(1, config.encoder.workers)
    from .use_module import UniversalSentenceEncoder

    first = next(iter(model), None) if hasattr(model, "__iter__") else None
    if isinstance(first, UniversalSentenceEncoder) and "fork" in mp.get_all_start_methods():
        return os.cpu_count() or 1
    return 1


def encode_piece(piece):
    texts, kwargs = piece
    model = _WORKER_MODEL
    return model.encode(texts, convert_to_numpy=True, show_progress_bar=False, **kwargs)


def _init_worker() -> None:
    import torch

    from .encoders import set_use_threads

    torch.set_num_threads(1)
    set_use_threads(_WORKER_MODEL, 1)  # one BLAS thread per worker, the USE backend built here


class encoder_pool:  # noqa: N801 - used as a context manager like a function
    """A fork pool of `workers` processes holding `model`, or None for in-process encoding."""

    def __init__(self, model, workers: int):
        self.model, self.workers, self.pool = model, workers, None

    def __enter__(self):
        global _WORKER_MODEL
        _WORKER_MODEL = self.model
        if self.workers > 1:
            self.pool = _ForkPool(self.workers)
        return self.pool

    def __exit__(self, *exc):
        global _WORKER_MODEL
        if self.pool is not None:
            self.pool.kill() if exc[0] is not None else self.pool.close()
        _WORKER_MODEL = None
        return False


# ---------------------------------------------------------------- the pool


class _Worker:
    """One forked process, the parent's end of its duplex pipe and the indexes of the pieces it holds."""

    def __init__(self, process, conn):
        self.process, self.conn, self.inflight = process, conn, deque()


class _ForkPool:
    """`workers` forked processes fed through one pipe each; `imap(fn, items)` yields in input order.

    Each worker holds at most two pieces, so it has the next one at hand when it sends a result. A second
    piece is queued only if it fits the pipe's buffer whole: the parent then never blocks sending to a
    worker that is itself blocked sending a result the parent is not reading.

    Must be created from the thread that outlives it (the main thread): PR_SET_PDEATHSIG fires when the
    creating thread exits.
    """

    def __init__(self, workers: int):
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self._workers: list[_Worker] = []
        self._closed = self._busy = False
        parent_pid = os.getpid()
        # SIGINT stays blocked while forking: a child cannot get a KeyboardInterrupt before it ignores
        # SIGINT, and a Ctrl-C meanwhile reaches the parent when the mask is restored
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for _ in range(workers):
                conn, child_conn = ctx.Pipe(duplex=True)
                inherited = [w.conn for w in self._workers] + [conn]  # parent ends the child must close
                process = ctx.Process(
                    target=_worker_main, args=(child_conn, inherited, parent_pid), name="prodcat-encoder", daemon=True
                )
                try:
                    process.start()
                except BaseException:
                    conn.close()
                    raise
                finally:
                    child_conn.close()
                self._workers.append(_Worker(process, conn))
        except BaseException:
            self.kill()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def imap(self, fn, items):
        """An iterator over fn(item) for each item, in order. Leaving it early (an exception, Ctrl-C or
        closing it) kills the pool; a worker's exception is re-raised here, a worker's death raises
        ProdcatError."""
        if self._closed:
            raise RuntimeError("the encoder pool is closed")
        return self._results(fn, iter(items))

    def _results(self, fn, items):
        from multiprocessing.connection import wait

        if self._busy:  # checked here, not in imap: an imap never iterated never runs `finally` below
            raise RuntimeError("the encoder pool runs one imap at a time")
        self._busy = True
        owner = {h: w for w in self._workers for h in (w.conn, w.process.sentinel)}
        results: dict[int, object] = {}
        sent = yielded = 0
        try:
            payload = _next_payload(fn, items)
            while True:
                while payload is not None:  # hand out pieces: to an idle worker, or a small one to a busy one
                    worker = min(self._workers, key=lambda w: len(w.inflight))
                    if worker.inflight and (len(worker.inflight) >= 2 or len(payload) > _QUEUE_BYTES):
                        break
                    try:
                        worker.conn.send_bytes(payload)
                    except OSError:
                        raise self._died(worker) from None
                    worker.inflight.append(sent)
                    sent += 1
                    payload = _next_payload(fn, items)
                if yielded in results:
                    yield results.pop(yielded)
                    yielded += 1
                elif yielded == sent:  # everything sent has been yielded and nothing is left to send
                    return
                else:
                    for ready in wait(list(owner)):
                        worker = owner[ready]
                        if ready == worker.process.sentinel:
                            raise self._died(worker)
                        try:
                            ok, value = worker.conn.recv()
                        except (EOFError, OSError):
                            raise self._died(worker) from None
                        if not ok:
                            raise value
                        results[worker.inflight.popleft()] = value
        except BaseException:  # KeyboardInterrupt and GeneratorExit included
            self.kill()
            raise
        finally:
            self._busy = False

    def _died(self, worker: _Worker) -> ProdcatError:
        worker.process.join(1.0)
        code = worker.process.exitcode
        how = "exit status unknown" if code is None else f"signal {-code}" if code < 0 else f"exit code {code}"
        return ProdcatError(f"encoding worker pid {worker.process.pid} died ({how}); run the same command to resume")

    def close(self) -> None:
        """Normal end: ask every worker to stop, wait a little, then kill any that have not."""
        if self._closed:
            return
        if self._busy:  # an imap left unfinished: its results are still on their way
            return self.kill()
        self._closed = True
        try:
            for w in self._workers:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
                w.conn.close()
            self._reap(_STOP_SECONDS)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL every worker still running, close the pipes and reap them within a bounded time."""
        self._closed = True
        for w in self._workers:
            if w.process.exitcode is None:
                try:
                    w.process.kill()
                except OSError:
                    pass
            w.conn.close()
        self._reap(_REAP_SECONDS)

    def _reap(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))


def _next_payload(fn, items) -> bytes | None:
    """The next (fn, item) message, pickled (its size decides whether a busy worker may queue it)."""
    item = next(items, _DONE)
    return None if item is _DONE else _dumps((fn, item))


# ---------------------------------------------------------------- inside a worker


def _worker_main(conn, inherited, parent_pid: int) -> None:
    """A worker's whole life. It never raises and never prints: it ends with os._exit(0) when told to
    stop or when its pipe breaks (the parent is gone), and sends back fn's exceptions as replies."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _die_with_parent(parent_pid)
        for c in inherited:  # else a worker would keep its siblings' pipes open
            c.close()
        try:
            _init_worker()
            init_error = None
        except Exception as exc:
            init_error = exc
        while True:
            message = conn.recv()
            if message is None:
                break
            fn, item = message
            try:
                if init_error is not None:
                    raise init_error
                reply = _dumps((True, fn(item)))
            except BaseException as exc:
                reply = _dumps((False, _portable(exc)))
            conn.send_bytes(reply)
    except BaseException:  # EOFError/BrokenPipeError: the parent closed the pool or died
        pass
    os._exit(0)


def _die_with_parent(parent_pid: int) -> None:
    """Have Linux SIGKILL this process when the parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _dumps(obj) -> bytes:
    from multiprocessing.reduction import ForkingPickler

    return bytes(ForkingPickler.dumps(obj))


def _portable(exc: BaseException) -> BaseException:
    """`exc` with the worker's traceback as a note, or a RuntimeError with its text if it cannot be
    pickled and unpickled (the parent re-raises what this returns)."""
    import pickle
    import traceback

    if hasattr(exc, "add_note"):  # Python >= 3.11: the parent's traceback shows where the worker failed
        exc.add_note(f"in encoding worker pid {os.getpid()}:\n" + "".join(traceback.format_exception(exc)))
    try:
        pickle.loads(_dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
