"""The first serving child, forked instead of started afresh.

Under ``citus run --debug`` the supervisor has already paid for the
interpreter, click and citus's command line by the time it starts the first
child; a new process would pay for them all again (about as long as
``citus run`` without the reloader takes to serve). Where it can, the
supervisor forks instead, and the forked process runs the command line again
as the child (:func:`allow`, given by ``citus run``), exactly as a started
child would run it: same arguments, the child's environment, standard error
on the supervisor's tee, default signal handlers, and the end a started child
would have (threads joined, exit handlers run).

Only the first child is forked, and only while the supervisor has no other
thread (a fork copies one thread; a lock held by another would never be
released in the copy). Spares, and any child after a crash, are started as
before: they must not carry the supervisor's state for hours. On Windows
(no ``fork``), and for scripts that call ``app.run()`` (their own code runs
before the server), nothing changes.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import typing as t

from .._compat import CAN_FORK, fork_process, kill_now, reap_child

_INTERRUPTED = object()

#: Runs the program again in the forked child and returns its exit status.
_entry: t.Callable[[], object] | None = None


def allow(entry: t.Callable[[], object]) -> None:
    """Let the supervisor fork its first child, which then calls ``entry``
    (the command line again) instead of starting this program afresh."""
    global _entry
    _entry = entry


def can_fork() -> bool:
    """True when the next child may be forked (see the module doc)."""
    return _entry is not None and CAN_FORK and threading.active_count() == 1


class ForkedChild:
    """The parts of :class:`subprocess.Popen` the supervisor uses, for a
    forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stderr: t.IO[bytes] | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()

    def _ended(self, status: int) -> None:
        with self._lock:
            if self.returncode is None:
                self.returncode = os.waitstatus_to_exitcode(status)
        self._done.set()

    def poll(self) -> int | None:
        """The exit status, or ``None`` while it runs."""
        if self.returncode is None:
            try:
                status = reap_child(self.pid)
            except ChildProcessError:  # reaped by a waiting thread
                self._done.wait(1.0)
                return self.returncode
            if status is not None:
                self._ended(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end; raise :exc:`subprocess.TimeoutExpired` past
        ``timeout``."""
        if timeout is None:
            if self.returncode is None:
                try:
                    _, status = os.waitpid(self.pid, 0)
                except ChildProcessError:
                    self._done.wait()
                else:
                    self._ended(status)
            assert self.returncode is not None
            return self.returncode
        deadline = time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None:
                return code
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(["citus"], timeout)
            self._done.wait(min(remaining, 0.01))

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:  # ended meanwhile
                pass

    def kill(self) -> None:
        """Stop it at once."""
        if self.poll() is None:
            try:
                kill_now(self.pid)
            except ProcessLookupError:  # ended meanwhile
                pass


def start(
    env: dict[str, str], stderr_fd: int, close: t.Iterable[int | socket.socket]
) -> ForkedChild:
    """Fork a child that runs the program again with ``env``, its standard
    error on ``stderr_fd``, after closing ``close`` (file descriptors and
    sockets that are the supervisor's own).

    :raises OSError: when the fork fails (the caller starts the child afresh).
    """
    entry = _entry
    assert entry is not None
    parent = os.getpid()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    # The child's collections then leave the objects it shares with the
    # supervisor alone, instead of copying every page that holds one.
    gc.freeze()
    try:
        pid = fork_process()
    finally:
        if os.getpid() == parent:
            gc.unfreeze()
    if pid:
        return ForkedChild(pid)
    code = 1
    try:
        _become_child(env, stderr_fd, close)
        code = _run(entry)
    finally:
        os._exit(code)


def _become_child(
    env: dict[str, str], stderr_fd: int, close: t.Iterable[int | socket.socket]
) -> None:
    """Make this forked process what a freshly started child would be.

    The exit handlers registered so far stay: those of the modules imported
    here would be registered by a started child too; the supervisor's own
    (the debugger's state file) act only in the process that registered them.
    """
    if stderr_fd != 2:
        os.dup2(stderr_fd, 2)
        os.close(stderr_fd)
    for item in close:
        try:
            if isinstance(item, socket.socket):
                item.close()  # the object too, so no later close hits a new fd
            else:
                os.close(item)
        except OSError:
            pass
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(entry: t.Callable[[], object]) -> int:
    """Run ``entry``, then end as the interpreter would: wait for the
    threads that are not daemons, run the exit handlers, flush."""
    try:
        result = entry()
        code: object = result if isinstance(result, int) else 0
    except SystemExit as exit:
        code = exit.code
    except KeyboardInterrupt:
        code = _INTERRUPTED
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        status = 0
    elif code is _INTERRUPTED:
        status = 1
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    try:
        # As the interpreter does: threading's own exit hooks (thread pools),
        # then wait for the threads that are not daemons.
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not current and not thread.daemon:
                thread.join()
        run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
        if run_exit_handlers is not None:
            run_exit_handlers()
    except KeyboardInterrupt:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    if code is _INTERRUPTED:
        # As the interpreter ends after an unhandled Ctrl+C: killed by SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return status
