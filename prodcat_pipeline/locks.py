"""Lock files for folders several processes may write: a cache (writers wait their turn) and a run folder
(a second run into it is refused).

A lock is an OS advisory lock (`flock`) on `<folder>/.prodcat.lock`, which also records who holds it (pid,
host, command, since) for the messages of those who wait or are refused. The kernel drops the lock the
moment its process dies, however it dies, so a stale lock file left by a killed run never blocks anyone:
the next writer takes the lock and rewrites the holder record. (`filelock`, which torch already installs,
was not used: it truncates the file while opening it, so a waiting process would erase the holder's record.)
Locks are re-entrant within a process (a nested `run` -> `train` -> `embed` takes each only once).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import ProdcatError

log = logging.getLogger(__name__)

LOCK_NAME = ".prodcat.lock"
_HELD: dict[str, list] = {}  # lock path -> [fd, depth] for the locks this process holds
_GUARD = threading.Lock()


class FolderLocked(ProdcatError):
    """Another process holds the folder's lock."""


def lock_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_NAME


def holder(folder: str | os.PathLike) -> dict | None:
    """The holder record of `folder`'s lock file (whether or not it is still held), or None."""
    try:
        raw = lock_path(folder).read_text(encoding="utf-8")[:4096]
        doc = json.loads(raw)
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def describe(record: dict | None) -> str:
    if not record:
        return "another process"
    since = record.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, int | float) else "?"
    return f"pid {record.get('pid')} on {record.get('host')} ({record.get('command', '?')}, since {when})"


def _try_flock(fd: int) -> bool:
    import errno
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


def _write_holder(fd: int) -> None:
    from .provenance import command_line

    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command_line(), "since": time.time()}
    data = json.dumps(record).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


@contextmanager
def folder_lock(folder: str | os.PathLike, *, what: str, wait: bool, poll: float = 0.2):
    """Hold `folder`'s lock for the block. `wait`: block until it is free (saying once who holds it), else
    raise FolderLocked naming the holder. `what` names the folder in messages ("the cache", "run folder")."""
    folder = Path(folder)
    path = lock_path(folder)
    try:  # before any work: a folder that cannot be written fails here, not after an hour of encoding
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ProdcatError(f"cannot write {what} at {folder}: {exc.strerror or exc}") from exc
    key = str(path.resolve())
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is not None:  # this process already holds it
        os.close(fd)
        try:
            yield
        finally:
            with _GUARD:
                held[1] -= 1
        return
    try:
        if not _try_flock(fd):
            if not wait:
                raise FolderLocked(
                    f"{what} {folder} is in use by {describe(holder(folder))}: wait for it to finish or choose "
                    "another folder"
                )
            log.warning("waiting for %s %s: locked by %s", what, folder, describe(holder(folder)))
            while not _try_flock(fd):
                time.sleep(poll)
        _write_holder(fd)
        with _GUARD:
            _HELD[key] = [fd, 1]
        try:
            yield
        finally:
            with _GUARD:
                _HELD.pop(key, None)
            os.ftruncate(fd, 0)  # released: no holder to name (the file stays; see the module docstring)
    finally:
        os.close(fd)  # closing the descriptor releases the flock
