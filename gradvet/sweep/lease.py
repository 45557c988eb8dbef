"""`WriterLease`: one writing sweep per store, by an OS lock on a side file (``STORE.lock``).

A sweep holds an exclusive, non-blocking ``flock`` on ``STORE.lock`` for as long as it writes
the store. The kernel drops the lock when the process ends, however it ends (kill -9, the OOM
killer, a crash), so a dead writer never blocks the store: the next sweep takes the lock at
once, with no heartbeat and no timeout to guess. The holder writes its pid, host and start
time into the file, so that a second sweep can name it; the file is removed when the lease
is released (after kill -9 it stays behind, unlocked, and the next sweep reuses it).

A second sweep on a held store is refused at once, in one sentence naming the writer, rather
than waiting (a sweep can run for hours, and a command that waits silently looks hung) or
sharing the grid (one process per store keeps "each run saved once, in one transaction" a
property of one program; parallelism is what ``--workers`` and the Ray backend are for).

Removing the file on release is safe against the classic race (B opens the old file, A
removes it and unlocks, B locks a file no longer in the folder while C creates and locks a new
one): after locking, the holder checks that the path still names the file it locked, and
retries if not.

The lock is advisory and local to what the kernel (or NFS's lock manager) sees; SQLite's WAL
mode needs a local file system anyway. The file descriptor is close-on-exec and worker
processes are started from a fork server, never from the holder, so no child inherits it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path

from gradvet.base.errors import GradvetError

ATTEMPTS = 5  # a lock file replaced under us this many times in a row: give up
MAX_HOLDER_BYTES = 4096


def lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


def _holder_text(fd: int) -> str:
    """'pid 1234 on host node7, since 2025-06-01 12:00:03', from what the holder wrote (or a plain phrase)."""
    try:
        data = json.loads(os.pread(fd, MAX_HOLDER_BYTES, 0).decode("utf-8", "replace"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(data["started"])))
        return f"pid {int(data['pid'])} on host {str(data['host'])[:200]}, since {since}"
    except (OSError, ValueError, TypeError, KeyError, OverflowError, RecursionError):
        return "a process that has not said who it is yet"


class WriterLease:
    """Hold the store's writer lock for the life of a `with` block (or until `release`).

    `WriterLease(store_path)` takes the lock or raises GradvetError naming the holder."""

    def __init__(self, store: str | os.PathLike[str]) -> None:
        self.store = Path(store)
        self.path = lock_path(self.store)
        self._fd: int | None = None
        self._acquire()

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as err:
            raise GradvetError(f"cannot write the store {str(self.store)!r}: its lock file {str(self.path)!r} "
                               f"cannot be created ({err.strerror or err}); give a store in a writable folder.") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise GradvetError(f"{str(self.path)!r}, the lock file of store {str(self.store)!r}, is not a regular "
                               "file; remove it or give another store.")
        return fd

    def _acquire(self) -> None:
        for _ in range(ATTEMPTS):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder_text(fd)
                os.close(fd)
                raise GradvetError(f"store {str(self.store)!r} is being written by another gradvet sweep "
                                   f"({holder}); wait for it to end, or give another store.") from None
            except OSError as err:
                os.close(fd)
                raise GradvetError(f"cannot lock the store {str(self.store)!r} for writing "
                                   f"({err.strerror or err}); give a store on a local disk.") from None
            if self._still_there(fd):
                self._fd = fd
                self._sign(fd)
                return
            os.close(fd)  # the previous holder removed the file we locked: lock the new one
        raise GradvetError(f"cannot lock the store {str(self.store)!r} for writing: its lock file "
                           f"{str(self.path)!r} keeps being replaced; give another store.")

    def _still_there(self, fd: int) -> bool:
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)

    @staticmethod
    def _sign(fd: int) -> None:
        """Say who holds the lock (best effort: a full disk only makes the refusal less specific)."""
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode(), 0)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if self._still_there(fd):
                os.unlink(self.path)
        os.close(fd)  # drops the lock

    def __enter__(self) -> WriterLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
