"""The supervisor: the first process, which holds the sockets and runs children.

It binds nothing itself (``run_simple`` did) and never imports the user's app
under ``citus run``. It starts a serving child the way the user started the
program, handing it the listening sockets and a control socket, and then only
reacts:

- the child announces a reload: start the next child at once on the same
  sockets (connections wait in the backlog meanwhile, none is refused) and give
  the old one :data:`~citus.reloader.child.GRACE_PERIOD` to finish, then kill it;
- the child exits with ``EXIT_RELOAD`` (3): start the next one;
  ``EXIT_FATAL`` (4): stop, status 1; ``EXIT_USAGE`` (5): stop, status 2;
- the child crashes (any other status): answer every request with a 500 page
  that shows the end of the child's error output, watch the files it watched
  and those named in its traceback, and start a new child on the next change.

The child's standard error passes through the supervisor (and on to the
terminal) so that the supervisor has the traceback of a crash, even of a syntax
error in the main script that no Python code in the child could report.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
from collections import deque

from .._compat import (
    MAX_PASSED_FDS,
    child_stderr,
    describe_exit_status,
    popen_passing,
    recv_with_fds,
    runnable_args,
    send_with_fds,
)
from .._env import dotenv_watch_paths, loaded_at
from .._log import echo
from . import forkstart
from .base import (
    WARNED_ENV,
    Backend,
    Watcher,
    background_thread,
    display_path,
    files_of_traceback_text,
    is_excluded,
    module_files,
    note_warning,
)
from .child import (
    CHANGED_AT_ENV,
    CONTROL_FD_ENV,
    GRACE_PERIOD,
    SPARE_ENV,
    SPAWNED_AT_ENV,
)
from .environment import Change, EnvironmentWatcher
from .errorpage import ErrorPage, ErrorServer, TrustCheck
from .preload import PreloadPlan, entries_in, preload_wanted
from .stat_backend import StatBackend

if t.TYPE_CHECKING:
    import ssl

#: Set to ``0`` to never start a spare child ahead of time.
PRESTART_ENV = "CITUS_RELOADER_PRESTART"
#: Seconds between the first child's report that it serves and the start of
#: the first spare: a new process would compete with the run's first answer.
FIRST_SPARE_DELAY = 0.1
#: Bytes of the child's standard error kept to show after a crash.
TAIL_BYTES = 64 * 1024
#: Lines of that output shown on the error page.
TAIL_LINES = 80
#: Seconds a child has to act on a cold restart before it is stopped anyway.
RESTART_ANSWER = 2.0
#: Seconds a child's first output waits for " * Restarting with ...", which
#: comes first on the terminal (a forked first child can speak sooner).
ANNOUNCE_WAIT = 5.0

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def child_args() -> list[str]:
    """The command line that starts this program again, as the user started it.

    ``[sys.executable, *sys.orig_argv[1:]]`` keeps interpreter options and
    works for ``citus run``, ``python script.py`` and ``python -m pkg``. On
    Windows a console script (``citus.exe``) may appear without its suffix;
    then the ``.exe`` (or the ``-script.py`` next to it) is run instead, as
    werkzeug does.
    """
    orig = list(getattr(sys, "orig_argv", []))
    args = [sys.executable, *orig[1:]] if orig else [sys.executable, *sys.argv]
    return runnable_args(args)


class _Child:
    """One serving child and the threads that listen to it."""

    def __init__(
        self,
        generation: int,
        proc: subprocess.Popen[bytes] | forkstart.ForkedChild,
        control: socket.socket,
    ) -> None:
        #: The generation it serves as (assigned when a spare is called in).
        self.generation = generation
        self.proc = proc
        self.control = control
        self.send_lock = threading.Lock()
        #: A spare: started ahead, waiting to be called in.
        self.spare = False
        #: The spare has imported what it can and waits.
        self.parked = False
        #: It has loaded the app and reported its files (it serves).
        self.serves = False
        #: Its server takes connections handed over by the previous child.
        self.adopting = False
        self.spawned_at = time.time()
        self.tail = bytearray()
        self.tail_lock = threading.Lock()
        self.tee_thread: threading.Thread | None = None
        #: Takes KeyboardInterrupt tracebacks out of its output.
        self.output = InterruptFilter()

    def send(self, data: bytes) -> bool:
        """Write ``data`` to the control socket whole (one writer at a time);
        False when the child is gone."""
        with self.send_lock:
            try:
                self.control.sendall(data)
            except OSError:
                return False
        return True

    def tail_text(self) -> str:
        with self.tail_lock:
            data = bytes(self.tail)
        text = _ANSI.sub("", data.decode("utf-8", "replace"))
        return "\n".join(text.splitlines()[-TAIL_LINES:])


class _Stop(Exception):
    """Raised in the main thread by SIGTERM: stop like Ctrl+C."""


class Supervisor:
    """Runs serving children on ``sockets`` until Ctrl+C (see the module doc).

    :param sockets: the bound, listening sockets to hand to each child.
    :param backend_factory: makes the backend used while a crashed child is
        down (the children make their own).
    :param backend_name: the name for the banner (or a function giving it).
    :param extra_files: watched besides the modules' files after a crash.
    :param exclude_patterns: fnmatch patterns never watched.
    :param ssl_context: used for the error page when the server speaks HTTPS.
    :param child_env: more environment variables for every child.
    :param trust: decides which requests the error page shows the crash to
        (the debugger's :meth:`~citus.debug.DebuggedApplication.trusts_request`);
        ``None`` (the debugger is off): to none of them.
    :param live_reload: the error page carries live reload's script.
    :param watch_environment: also watch the dependency declarations, the
        installed packages and the env files, polling them every
        ``environment_interval`` seconds, and restart cold when they change
        (see :mod:`.environment`).
    :param environment_interval: seconds between two such polls.
    """

    def __init__(
        self,
        sockets: list[socket.socket],
        backend_factory: t.Callable[[], Backend],
        backend_name: str | t.Callable[[], str],
        extra_files: t.Sequence[str] = (),
        exclude_patterns: t.Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
        child_env: dict[str, str] | None = None,
        trust: TrustCheck | None = None,
        live_reload: bool = False,
        watch_environment: bool = False,
        environment_interval: float = 1.0,
    ) -> None:
        self.sockets = sockets
        self.watch_environment = watch_environment
        self.environment_interval = environment_interval
        self.trust = trust
        self.live_reload = live_reload
        self.child_env = dict(child_env or {})
        self.backend_factory = backend_factory
        self.backend_name = backend_name
        self.extra_files = list(extra_files)
        self.exclude_patterns = list(exclude_patterns)
        self.ssl_context = ssl_context
        self._events: queue.Queue[tuple[str, _Child | None, t.Any]] = queue.Queue()
        self._generation = -1
        self._current: _Child | None = None
        self._children: list[_Child] = []
        self._watched: list[str] = []
        self._error_server: ErrorServer | None = None
        self._crash_watcher: Watcher | None = None
        self._crashed: _Child | None = None
        #: Connections handed over by an old child, until a serving child
        #: says that it takes them (``adopting``).
        self._held: list[int] = []
        self._spare: _Child | None = None
        self._spares_work = False
        #: Set as soon as Ctrl+C (or SIGTERM) reaches the supervisor.
        self._stopping = threading.Event()
        #: The next generation starts cold: a plain child, no spare.
        self._cold = False
        #: ``(child, monotonic deadline)`` of a cold restart asked of a child.
        self._restart_asked: tuple[_Child, float] | None = None
        #: Set once " * Restarting with ..." is out: the children's output
        #: waits for it.
        self._announced = threading.Event()
        #: Set once the first child serves (the environment watcher starts).
        self._serving = threading.Event()
        self._env_watcher: EnvironmentWatcher | None = None
        self._spares_wanted = os.environ.get(PRESTART_ENV, "1").strip() not in (
            "0",
            "false",
            "no",
            "off",
        )
        #: What spares import ahead of the user's code (see .preload).
        self._preload = PreloadPlan(preload_wanted())
        #: The spare's list waits until the serving child serves.
        self._preload_held = False

    # Starting children ---------------------------------------------------------

    def _spawn(self, changed_at: float | None) -> None:
        """Make the next generation serve: call in the spare, or start a child."""
        self._generation += 1
        now = repr(time.time())
        env = {"CITUS_RUN_GENERATION": str(self._generation), SPAWNED_AT_ENV: now}
        if changed_at is not None:
            env[CHANGED_AT_ENV] = repr(changed_at)
        if os.environ.get(WARNED_ENV):
            env[WARNED_ENV] = os.environ[WARNED_ENV]  # a spare started before
        spare, self._spare = self._spare, None
        cold, self._cold = self._cold, False
        self._restart_asked = None
        if cold and spare is not None:
            self._dismiss(spare)  # it holds the old environment
            spare = None
        # A spare still importing is called in too: it reads the message as
        # soon as it is ready, sooner than a new process would be.
        if spare is not None and spare.proc.poll() is None:
            self._fill_watched()
            message: dict[str, object] = {
                "op": "go",
                "env": env,
                "unset": [] if changed_at is not None else [CHANGED_AT_ENV],
                "files": self._watched,
            }
            spare.spare = False  # from now on its output is shown
            if not spare.send(json.dumps(message).encode() + b"\n"):
                spare.spare = True
            else:
                spare.generation = self._generation
                # It loads the user's code from now on: after a crash, only
                # changes from now on are news (the one that called it in is not).
                spare.spawned_at = time.time()
                self._current = spare
                # The next spare starts now, on the other core, rather than
                # once this one serves: preloading a large app's libraries
                # takes longer than a developer waits between two saves.
                self._start_spare()
                return
        if spare is not None:
            self._dismiss(spare)
        child = self._start(env, spare=False)
        # The files the last child watched (none before the first: it loads
        # the same modules as this process did, and waits for this message).
        opening: dict[str, object] = {"op": "watch", "files": self._watched}
        if cold:
            # A cold start: nothing may be carried over from the old
            # environment (no preloaded modules either).
            opening["fresh"] = True
        first = json.dumps(opening) + "\n"
        try:
            child.control.sendall(first.encode())
        except OSError:
            pass
        self._current = child
        self._fill_watched()  # for a crash before the child reports its own

    def _fill_watched(self) -> None:
        """Before any child reported its files: the modules loaded here."""
        if not self._watched:
            self._watched = sorted(
                p
                for p in module_files() | set(self.extra_files)
                if not is_excluded(p, self.exclude_patterns)
            )

    def _start_spare(self) -> None:
        """Start a spare child that waits, warm, to serve the next generation."""
        if self._spare is not None or not (self._spares_work and self._spares_wanted):
            return
        if self._cold:
            return  # a cold restart is on its way: the spare would be stale
        env = {"CITUS_RUN_GENERATION": str(self._generation + 1), SPARE_ENV: "1"}
        self._spare = self._start(env, spare=True)
        self._preload_held = True
        self._release_preload()

    def _spare_due(self, child: _Child) -> None:
        time.sleep(FIRST_SPARE_DELAY)
        self._events.put(("spare-due", child, None))

    def _release_preload(self) -> None:
        """Send the spare its list once the serving child serves: importing
        hundreds of modules meanwhile would slow the reload in progress."""
        spare, current = self._spare, self._current
        if not self._preload_held or spare is None:
            return
        if current is not None and not current.serves:
            return  # sent when it reports its files
        self._preload_held = False
        self._send_preload(spare, self._preload.message(watched=self._watched))

    def _send_preload(self, child: _Child, message: dict[str, object] | None) -> None:
        """Send ``message`` in the background: a long list may fill the socket
        before the spare, still starting, reads it."""
        if message is not None:
            data = json.dumps(message).encode() + b"\n"
            background_thread(child.send, data, name="citus-preload-send")

    def _preload_event(self, kind: str, child: _Child, value: t.Any) -> None:
        """A child's list of imports, or a spare's modules that misbehaved."""
        if kind == "imported":
            # (Nothing of a generation that a cold restart replaces.)
            if child is self._current and not self._cold:
                new = self._preload.add(value)
                if new and self._spare is not None and not self._preload_held:
                    message = self._preload.message(new, watched=self._watched)
                    self._send_preload(self._spare, message)
        else:
            self._preload.skip(value)
            if child is self._spare:
                # It imported something it should not have: start afresh.
                self._spare = None
                self._dismiss(child)
                self._start_spare()

    def _dismiss(self, child: _Child) -> None:
        try:
            child.control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._retire(child)

    def _start(self, extra_env: dict[str, str], *, spare: bool) -> _Child:
        parent_end, child_end = socket.socketpair()
        fds = [sock.fileno() for sock in self.sockets]
        env = dict(os.environ)
        env.update(self.child_env)
        env.pop(CHANGED_AT_ENV, None)
        env.pop(SPARE_ENV, None)
        env["CITUS_RUN_MAIN"] = "true"
        env["CITUS_SERVER_FDS"] = ",".join(str(fd) for fd in fds)
        env[CONTROL_FD_ENV] = str(child_end.fileno())
        env.update(extra_env)
        proc: subprocess.Popen[bytes] | forkstart.ForkedChild
        master: int | None
        forked = None
        if not spare and self._generation == 0 and forkstart.can_fork():
            forked = self._fork(env, parent_end)
        if forked is not None:
            proc, master = forked
            child_end.close()
        else:
            kwargs = popen_passing([*self.sockets, child_end])
            master, stderr = child_stderr()
            try:
                proc = subprocess.Popen(
                    child_args(), env=env, stderr=stderr, close_fds=True, **kwargs
                )
            except BaseException:
                parent_end.close()
                if master is not None:
                    os.close(master)
                raise
            finally:
                child_end.close()
                if master is not None:
                    os.close(stderr)
        child = _Child(int(env["CITUS_RUN_GENERATION"]), proc, parent_end)
        child.spare = spare
        # Forget children that are gone: a server runs for hours of reloads.
        self._children = [c for c in self._children if c.proc.poll() is None]
        self._children.append(child)
        if master is None:
            assert proc.stderr is not None
            read_fd = os.dup(proc.stderr.fileno())
            proc.stderr.close()
        else:
            read_fd = master
        child.tee_thread = background_thread(self._tee, child, read_fd)
        background_thread(self._listen, child, parent_end)
        background_thread(self._wait, child)
        return child

    def _fork(
        self, env: dict[str, str], parent_end: socket.socket
    ) -> tuple[forkstart.ForkedChild, int] | None:
        """Fork the first child (see :mod:`.forkstart`); return it and the
        file descriptor to read its standard error from, or ``None`` when
        it cannot be forked (then it is started afresh)."""
        try:
            master, slave = child_stderr()
            if master is None:
                read_fd, write_fd = os.pipe()
            else:
                read_fd, write_fd = master, slave
        except OSError:
            return None
        try:
            proc = forkstart.start(env, write_fd, [read_fd, parent_end])
        except OSError:
            os.close(read_fd)
            return None
        finally:
            os.close(write_fd)
        return proc, read_fd

    def _tee(self, child: _Child, fd: int) -> None:
        """Copy the child's standard error to ours, keeping its end."""
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except InterruptedError:  # pragma: no cover
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                with child.tail_lock:
                    child.tail += chunk
                    if len(child.tail) > TAIL_BYTES:
                        del child.tail[: len(child.tail) - TAIL_BYTES]
                out = child.output.feed(chunk)
                if out and not child.spare:
                    # A spare's output (a Ctrl+C while it starts) is noise.
                    self._announced.wait(ANNOUNCE_WAIT)
                    _write_stderr(out)
        finally:
            os.close(fd)
            out = child.output.flush()
            if out and not child.spare:
                self._announced.wait(ANNOUNCE_WAIT)
                _write_stderr(out)

    def _listen(self, child: _Child, sock: socket.socket) -> None:
        """Read the child's messages (one JSON object per line)."""
        fds: deque[int] = deque()  # connections handed over, in order
        try:
            for line in _lines(sock, fds):
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                op = message.get("op")
                if op == "handoff":
                    count = message.get("count")
                    count = count if isinstance(count, int) else 0
                    passed = [fds.popleft() for _ in range(min(count, len(fds)))]
                    self._events.put(("handoff", child, passed))
                elif op == "reload":
                    at = message.get("at")
                    at = at if isinstance(at, (int, float)) else time.time()
                    self._events.put(("reload", child, at))
                elif op == "watch" and isinstance(message.get("files"), list):
                    files = [f for f in message["files"] if isinstance(f, str)]
                    self._events.put(("watch", child, files))
                elif op in ("spare-capable", "parked", "adopting"):
                    self._events.put((op, child, None))
                elif op == "imported":
                    self._events.put((op, child, entries_in(message)))
                elif op == "skip" and isinstance(message.get("modules"), list):
                    names = [n for n in message["modules"] if isinstance(n, str)]
                    self._events.put((op, child, names))
                elif op == "warned" and isinstance(message.get("key"), str):
                    self._events.put(("warned", child, message["key"]))
        finally:
            sock.close()
            for fd in fds:
                _close_fd(fd)

    def _wait(self, child: _Child) -> None:
        code = child.proc.wait()
        if child.tee_thread is not None:
            child.tee_thread.join(0.5)
        self._events.put(("exit", child, code))

    def _retire(self, child: _Child) -> None:
        """Give an old child the grace period to finish, then kill it."""

        def finish() -> None:
            try:
                child.proc.wait(GRACE_PERIOD)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()

        background_thread(finish)

    # After a crash -------------------------------------------------------------

    def _enter_crash(self, child: _Child, code: int) -> None:
        if code == 0:
            echo(
                " * The server process ended by itself (exit status 0); starting"
                " it again when a watched file changes",
                err=True,
            )
        else:
            echo(
                f" * The server process stopped ({describe_exit_status(code)}); showing"
                " its error until a watched file changes",
                err=True,
            )
        self._crashed = child
        self._serving.set()
        page = ErrorPage(
            child.tail_text(), describe_exit_status(code), self.trust, self.live_reload
        )
        server = ErrorServer(self.sockets, page, self.ssl_context)
        server.start()
        self._error_server = server
        self._answer_held()
        files = set(self._watched) | set(self.extra_files)
        files |= files_of_traceback_text(child.tail_text())
        files |= module_files()
        watcher = Watcher(
            self.backend_factory(),
            sorted(files),
            self.exclude_patterns,
            scan_modules=False,
            since=child.spawned_at,
        )
        self._crash_watcher = watcher

        def watch() -> None:
            changed = watcher.run()
            if changed:
                self._events.put(("change", child, (time.time(), changed)))

        background_thread(watch, name="citus-crash-watch")

    def _leave_crash(self) -> None:
        if self._crash_watcher is not None:
            self._crash_watcher.stop()
            self._crash_watcher = None
        if self._error_server is not None:
            self._error_server.stop()
            self._error_server = None
        self._crashed = None

    # Cold restarts -------------------------------------------------------------

    def _watch_env(self) -> None:
        """Watch the dependencies and the env files for the whole run (in a
        thread, once the first child serves: never on its way)."""
        since = time.time()
        self._serving.wait(10.0)
        if self._stopping.is_set():
            return
        try:
            watcher = EnvironmentWatcher(
                [str(p) for p in dotenv_watch_paths()], since=loaded_at() or since
            )
        except OSError:  # the current folder was deleted: nothing to watch
            return
        self._env_watcher = watcher
        # Polled, whatever the children use: a few files and folders cost a
        # few stat calls a second, and need no watches of the system's (nor
        # a second voice for the children's warnings about them).
        backend = StatBackend(self.environment_interval)
        while not self._stopping.is_set():
            changes = watcher.run(backend)
            if not changes:
                break
            self._events.put(("cold", None, (time.time(), changes)))

    def _cold_restart(self, at: float, changes: list[Change]) -> None:
        """Start the next generation cold, with the env files read again."""
        from .._env import EnvFileError, reload_dotenv

        try:
            reload_dotenv()
        except EnvFileError as error:
            echo(f" * {error} Keeping the environment as it was.", err=True)
            return
        for change in changes[:5]:
            echo(f" * {change.line}")
        self._cold = True
        if self._spare is not None:
            spare, self._spare = self._spare, None
            self._dismiss(spare)
        # Nothing imported in the old environment is preloaded again; what
        # misbehaved when preloaded stays skipped.
        old_plan, self._preload = self._preload, PreloadPlan(self._preload.enabled)
        self._preload.skipped = old_plan.skipped
        if self._crashed is not None:
            self._leave_crash()
            self._spawn(at)
            return
        current = self._current
        if current is None or current.proc.poll() is not None:
            self._spawn(at)
            return
        # The child stops the way it does for a change of code (it finishes
        # its requests), then announces its reload; the supervisor then
        # starts the next generation, cold.
        message = json.dumps({"op": "restart", "at": at}) + "\n"
        try:
            current.control.sendall(message.encode())
        except OSError:
            self._retire(current)
            self._spawn(at)
            return
        self._restart_asked = (current, time.monotonic() + RESTART_ANSWER)

    def _check_restart_asked(self) -> None:
        """A child that ignores a cold restart (its program never started
        the watcher) is stopped after :data:`RESTART_ANSWER` seconds."""
        asked = self._restart_asked
        if asked is None or time.monotonic() < asked[1]:
            return
        self._restart_asked = None
        if asked[0] is self._current:
            self._retire(asked[0])
            self._spawn(time.time())

    # The loop ---------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until Ctrl+C or SIGTERM (0), ``EXIT_FATAL`` (1) or
        ``EXIT_USAGE`` (2)."""
        previous = previous_int = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._on_stop_signal)
            previous_int = signal.signal(signal.SIGINT, self._on_stop_signal)
        try:
            self._spawn(None)
            # Named once the child is on its way (naming may import watchdog);
            # the child's output waits for this line (a forked child can
            # speak first).
            name = self.backend_name
            try:
                echo(f" * Restarting with {name() if callable(name) else name}")
            finally:
                self._announced.set()
            if self.watch_environment:
                background_thread(self._watch_env, name="citus-env-watch")
            return self._loop()
        except (KeyboardInterrupt, _Stop):
            self._stopping.set()
            return 0
        finally:
            if self._env_watcher is not None:
                self._env_watcher.stop()
            self._announced.set()
            self._leave_crash()
            self._close_held()
            self._stop_children()
            # Their last words go out before we exit.
            for child in self._children:
                if child.tee_thread is not None:
                    child.tee_thread.join(1.0)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if previous_int is not None:
                signal.signal(signal.SIGINT, previous_int)

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self._stopping.set()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Stop()

    def _loop(self) -> int:
        from . import EXIT_FATAL, EXIT_RELOAD, EXIT_USAGE

        while True:
            try:
                kind, child, value = self._events.get(timeout=1.0)
            except queue.Empty:
                kind, child, value = "tick", None, None
            self._check_restart_asked()
            if kind == "tick":
                continue
            if kind == "cold":
                self._cold_restart(*value)
                continue
            current = self._current
            if kind in ("imported", "skip") and child is not None:
                self._preload_event(kind, child, value)
                continue
            if child is not None and child.spare:
                self._spare_event(kind, child)
                continue
            if kind == "watch":
                if value:
                    self._watched = value
                if child is current and child is not None:
                    # It serves: now start the next one's spare, off its path
                    # (after the run's first answer, which is on its way).
                    first = child.generation == 0 and not child.serves
                    child.serves = True
                    if first:
                        background_thread(self._spare_due, child)
                    else:
                        self._start_spare()
                        self._release_preload()
                    self._serving.set()
                continue
            if kind == "spare-due":
                if child is current:
                    self._start_spare()
                    self._release_preload()
                continue
            if kind == "spare-capable":
                self._spares_work = True
                continue
            if kind == "warned":
                # Later children (and our own watcher after a crash) stay quiet.
                if "," not in value:
                    note_warning(value)
                continue
            if kind == "handoff":
                self._held.extend(value)
                self._pass_on(child)
                continue
            if kind == "adopting" and child is not None:
                child.adopting = True
                self._pass_on(None)
                continue
            if kind == "change":
                if self._crashed is not None and child is self._crashed:
                    at, changed = value
                    for path in changed[:5]:
                        echo(f" * Detected change in {display_path(path)}, reloading")
                    self._leave_crash()
                    self._spawn(at)
                continue
            if current is None or child is not current:
                continue  # an old child, already replaced
            if kind == "reload":
                self._retire(current)
                self._spawn(value)
                # From now on its connections go to the next child: tell it,
                # so that it stops knowing that no more will come its way.
                current.send(b'{"op": "replaced"}\n')
            elif kind == "exit":
                code = value
                if code == EXIT_RELOAD:
                    self._spawn(None)
                elif code == EXIT_FATAL:
                    return 1
                elif code == EXIT_USAGE:
                    return 2
                elif code == 0 and self._stopping.is_set():
                    return 0
                elif self._crashed is None:
                    # Any other end, exit 0 included (a script whose app.run()
                    # call was just edited away), waits for the next change.
                    self._current = None
                    self._enter_crash(current, code)

    def _pass_on(self, source: _Child | None) -> None:
        """Give the connections that old children handed over (but not
        ``source``'s own) to the serving child, once it takes them.

        Until then they wait here: a child that exits before it serves (a
        spare that must not serve, a crash) loses none. Without a serving
        child (after a crash) the error page answers them.
        """
        target = self._current
        if target is None or target.proc.poll() is not None:
            if self._crashed is not None:
                self._answer_held()
            return
        if target is source or not target.adopting or not self._held:
            return
        held, self._held = self._held, []
        try:
            for start in range(0, len(held), MAX_PASSED_FDS):
                chunk = held[start : start + MAX_PASSED_FDS]
                line = json.dumps({"op": "adopt", "count": len(chunk)}) + "\n"
                with target.send_lock:  # never inside another message
                    send_with_fds(target.control, line.encode(), chunk)
        except OSError:
            pass
        finally:
            for fd in held:  # the child has its copies now
                _close_fd(fd)

    def _answer_held(self) -> None:
        """After a crash: the error page answers the connections held for
        the next child. Closing them would reset the requests that may wait
        on them already (a connection accepted just before the stop is
        handed over with its request unread)."""
        server = self._error_server
        if server is None:
            self._close_held()
            return
        held, self._held = self._held, []
        socks = []
        for fd in held:
            try:
                socks.append(socket.socket(fileno=fd))
            except OSError:
                _close_fd(fd)
        server.adopt(socks)

    def _close_held(self) -> None:
        held, self._held = self._held, []
        for fd in held:
            _close_fd(fd)

    def _spare_event(self, kind: str, child: _Child) -> None:
        if child is not self._spare:
            return
        if kind == "parked":
            child.parked = True
        elif kind == "exit":
            # A spare that dies before it is needed: this program cannot
            # wait as a spare; start children the plain way from now on.
            self._spare = None
            self._spares_work = False

    def _stop_children(self) -> None:
        """Stop every child still running: they got Ctrl+C too, so wait a
        moment, then terminate, then kill."""
        alive = [c.proc for c in self._children if c.proc.poll() is None]
        deadline = time.monotonic() + 1.0
        for step in ("wait", "terminate", "kill"):
            for proc in alive:
                if step == "terminate" and proc.poll() is None:
                    proc.terminate()
                elif step == "kill" and proc.poll() is None:
                    proc.kill()
            for proc in alive:
                try:
                    proc.wait(max(deadline - time.monotonic(), 0.05))
                except subprocess.TimeoutExpired:
                    pass
            alive = [p for p in alive if p.poll() is None]
            if not alive:
                break
            deadline = time.monotonic() + 1.0


def _lines(sock: socket.socket, fds: deque[int]) -> t.Iterator[bytes]:
    """The lines read from ``sock`` until its end or an error (a reset by a
    child that exited without reading everything); the file descriptors that
    come with them are appended to ``fds``."""
    buffer = b""
    while True:
        try:
            data, passed = recv_with_fds(sock, 65536)
        except InterruptedError:  # pragma: no cover - retried by Python already
            continue
        except (OSError, ValueError):
            return
        fds.extend(passed)
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            yield line


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


_TRACEBACK_START = "Traceback (most recent call last):"


class InterruptFilter:
    """Passes a child's output through, minus tracebacks of ``KeyboardInterrupt``.

    The terminal sends Ctrl+C to the children too. One interrupted in the
    middle of an import (a reload in progress, a slow module) prints the
    traceback of its ``KeyboardInterrupt`` on the way out, which tells the user
    nothing: they pressed Ctrl+C. A traceback is held back from its first line
    until its exception line, then dropped if that is ``KeyboardInterrupt`` and
    passed on otherwise. Everything else passes at once.
    """

    def __init__(self) -> None:
        self._partial = b""
        self._held: list[bytes] | None = None

    def feed(self, data: bytes) -> bytes:
        """The part of ``data`` (with what came before) to write now."""
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        out = [self._line(line + b"\n") for line in lines]
        if self._held is None and self._partial:
            text = _plain(self._partial)
            if not (text and _TRACEBACK_START.startswith(text)):
                out.append(self._partial)  # a prompt, a progress bar: now
                self._partial = b""
        return b"".join(out)

    def flush(self) -> bytes:
        """What is left at the end of the output (an unfinished traceback too)."""
        out = b"".join(self._held or []) + self._partial
        self._held, self._partial = None, b""
        return out

    def _line(self, line: bytes) -> bytes:
        text = _plain(line)
        if self._held is None:
            if text == _TRACEBACK_START:
                self._held = [line]
                return b""
            return line
        if not text or line[:1] in (b" ", b"\t") or text == _TRACEBACK_START:
            self._held.append(line)
            return b""
        # The exception line ends the traceback.
        held, self._held = self._held, None
        if text.startswith("KeyboardInterrupt"):
            return b""
        return b"".join(held) + line


def _plain(line: bytes) -> str:
    return _ANSI.sub("", line.decode("utf-8", "replace")).strip()


def _write_stderr(data: bytes) -> None:
    stream = sys.stderr
    try:
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
    except (OSError, ValueError):
        pass
