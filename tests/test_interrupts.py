"""The encoding pool: results in order, worker errors and deaths reported, and Ctrl-C / a killed parent
leave no worker behind (real signals, real subprocesses)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, fake_vectors, product_columns, write_table

from prodcat_pipeline.encode_pool import encode_piece, encoder_pool
from prodcat_pipeline.errors import ProdcatError

TESTS_DIR = Path(__file__).parent
KWARGS = {"batch_size": 8, "normalize_embeddings": True}


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the test run) if the block takes longer than `seconds`."""

    def _expire(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie waiting for init to reap it is dead


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def wait_for_children(pid: int, n: int, timeout: float = 15.0) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = children(pid)
        if len(found) >= n:
            return found
        time.sleep(0.02)
    raise AssertionError(f"process {pid} started {children(pid)} children, expected {n}")


def wait_gone(pids, timeout: float) -> float:
    """Seconds until none of `pids` is alive; fails after `timeout`."""
    start = time.monotonic()
    while any(alive(p) for p in pids):
        assert time.monotonic() - start < timeout, [p for p in pids if alive(p)]
        time.sleep(0.01)
    return time.monotonic() - start


# ---------------------------------------------------------------- functions run in the workers


def jittered_square(x: int) -> int:
    time.sleep((x * 7919 % 5) * 0.003)  # finish out of order
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad piece {x}")
    time.sleep(0.01)
    return x


class TwoArgError(Exception):
    def __init__(self, a, b):  # unpickling calls TwoArgError("a/b"): it cannot cross the pipe as is
        super().__init__(f"{a}/{b}")


def fail_unpicklable(x: int) -> int:
    raise TwoArgError("left", "right")


def slow_pid(x: int) -> int:
    time.sleep(0.05)
    return os.getpid()


def big(x: int) -> np.ndarray:  # pieces and results far over the pipe buffer
    return np.full(300_000, len(x), np.float32)


# ---------------------------------------------------------------- the pool in this process


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_results_come_in_input_order(workers):
    items = list(range(37))
    with deadline(30), encoder_pool(FakeEncoder(), workers) as pool:
        assert (pool is None) == (workers == 1)
        imap = pool.imap if pool is not None else map
        for _ in range(2):  # the pool serves one imap per shard
            assert list(imap(jittered_square, items)) == [x * x for x in items]
        assert list(imap(jittered_square, [])) == []
        imap(jittered_square, items)  # created but never iterated: no harm to the next one
        assert list(imap(jittered_square, items[:5])) == [x * x for x in items[:5]]


def test_encode_piece_in_workers_equals_in_process():
    texts = [f"title {i}" for i in range(300)]
    pieces = [(texts[s : s + 16], KWARGS) for s in range(0, len(texts), 16)]
    with deadline(30), encoder_pool(FakeEncoder(), 2) as pool:
        got = np.concatenate(list(pool.imap(encode_piece, pieces)))
    np.testing.assert_array_equal(got, fake_vectors(texts))


def test_pieces_and_results_larger_than_the_pipe_buffer():
    items = ["x" * (100_000 + i) for i in range(12)]
    with deadline(30), encoder_pool(FakeEncoder(), 2) as pool:
        got = list(pool.imap(big, items))
    assert [int(v[0]) for v in got] == [len(x) for x in items]


def test_worker_exception_is_reraised_with_its_message():
    with deadline(30), encoder_pool(FakeEncoder(), 2) as pool:
        pids = pool.pids
        with pytest.raises(ValueError, match="bad piece 3"):
            list(pool.imap(fail_on_three, range(20)))
        with pytest.raises(RuntimeError, match="closed"):  # the pool is gone after an error
            pool.imap(fail_on_three, range(2))
    assert not any(alive(p) for p in pids)


def test_unpicklable_worker_exception_keeps_its_text():
    with deadline(30), encoder_pool(FakeEncoder(), 2) as pool, pytest.raises(RuntimeError) as err:
        list(pool.imap(fail_unpicklable, range(4)))
    assert str(err.value) == "TwoArgError: left/right"


def test_worker_killed_mid_run_raises_prodcat_error():
    with deadline(30), encoder_pool(FakeEncoder(), 2) as pool:
        results = pool.imap(slow_pid, range(400))
        victim = next(results)
        os.kill(victim, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(ProdcatError, match=rf"encoding worker pid {victim} died \(signal 9\); run the same"):
            list(results)
        assert time.monotonic() - start < 3
        pids = pool.pids
    assert not any(alive(p) for p in pids)


def test_leaving_early_or_an_exception_kills_the_workers():
    with deadline(30):
        with encoder_pool(FakeEncoder(), 2) as pool:
            pids = pool.pids
            results = pool.imap(slow_pid, range(400))
            next(results)
            results.close()  # GeneratorExit with pieces in flight
        assert not any(alive(p) for p in pids)

        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt), encoder_pool(FakeEncoder(), 2) as pool:
            pids = pool.pids
            for _ in pool.imap(slow_pid, range(400)):
                raise KeyboardInterrupt  # as a Ctrl-C in the consuming loop would
        assert time.monotonic() - start < 3
        assert not any(alive(p) for p in pids)


# ---------------------------------------------------------------- real signals to a subprocess

EMBED_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from conftest import SlowFakeEncoder as Slow
import prodcat_pipeline.embedder as embedder

Slow.delay = 0.1
embedder.load_encoder = lambda *a, **k: Slow()
from prodcat_pipeline.cli import main
sys.argv = ["prodcat", *sys.argv[2:]]
main()
"""

POOL_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from conftest import SlowFakeEncoder as Slow
from prodcat_pipeline.encode_pool import encode_piece, encoder_pool

Slow.delay = 0.05

pieces = [(["some title"] * 8, {"batch_size": 8, "normalize_embeddings": True})] * 20
with encoder_pool(Slow(), 2) as pool:
    while True:
        for _ in pool.imap(encode_piece, pieces):
            pass
"""


def _start(script: str, args, tmp_path: Path, tag: str):
    out, err = tmp_path / f"{tag}.out", tmp_path / f"{tag}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:  # files, not pipes: orphans cannot hold them open
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(TESTS_DIR), *map(str, args)],
            stdout=fo,
            stderr=fe,
            start_new_session=True,  # its own process group, as a shell job gets
            env={**os.environ, "PYTHONPATH": str(TESTS_DIR)},
        )
    return proc, err


@pytest.mark.slow
def test_ctrl_c_during_embed_exits_fast_and_leaves_no_worker(tmp_path):
    data = write_table(tmp_path / "d.parquet", product_columns(6000))
    rng = random.Random()
    for rep in range(5):
        delay = rng.uniform(0.0, 1.5)
        args = ["embed", "--data", data, "--cache-dir", tmp_path / f"cache{rep}", "--no-config"]
        args += ["--device", "cpu", "--workers", "2", "--batch-size", "8", "--shard-size", "128"]
        proc, err = _start(EMBED_SCRIPT, args, tmp_path, f"embed{rep}")
        try:
            workers = wait_for_children(proc.pid, 2)
            time.sleep(delay)
            if rep % 2:
                os.kill(proc.pid, signal.SIGINT)
            else:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: workers get it too
            start = time.monotonic()
            code = proc.wait(timeout=5)
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        stderr = err.read_text()
        context = f"rep {rep}, SIGINT {delay:.2f} s after the workers started:\n{stderr[-3000:]}"
        assert code == 130, context
        assert took < 5, context
        assert "Traceback" not in stderr, context
        assert [line for line in stderr.splitlines() if line.strip()] == [
            "Interrupted: finished shards are kept; run the same command to encode the rest."
        ], context
        wait_gone(workers, timeout=2)


@pytest.mark.slow
def test_workers_die_silently_with_a_killed_parent(tmp_path):
    proc, err = _start(POOL_SCRIPT, [], tmp_path, "pool")
    try:
        workers = wait_for_children(proc.pid, 2)
        time.sleep(1.0)  # encoding by now
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=5) == -signal.SIGKILL
        took = wait_gone(workers, timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(0.2)
    assert err.read_text() == "", err.read_text()
    assert took < 2
