"""Platform differences in one place: code that must differ between POSIX and
Windows lives here, behind names that are the same on both.

Each branch tests ``sys.platform == "win32"`` literally so that mypy narrows it,
and both branches define the same names. Other modules never test the
platform themselves; a check that only picks an error message reads one of the
constants :data:`WIN`, :data:`CAN_FORK` or :data:`HAS_UNIX_SOCKETS`.
"""

from __future__ import annotations

import errno
import importlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import typing as t
import warnings

if sys.platform == "win32":
    import msvcrt

    def lock_file(file: t.IO[t.Any]) -> None:
        """Block until this process holds an exclusive lock on ``file``."""
        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_LOCK, 1)

    def unlock_file(file: t.IO[t.Any]) -> None:
        """Release the lock taken by :func:`lock_file`."""
        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def lock_file(file: t.IO[t.Any]) -> None:
        """Block until this process holds an exclusive lock on ``file``."""
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)

    def unlock_file(file: t.IO[t.Any]) -> None:
        """Release the lock taken by :func:`lock_file`."""
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)


#: True on Windows.
WIN = sys.platform == "win32"


class PortHolder(t.NamedTuple):
    """A process found listening on a port."""

    #: The process id.
    pid: int
    #: Its command line (or just its name where that is all the platform says).
    command: str


def enable_vt_mode(stream: t.TextIO) -> bool:
    """Let ``stream`` (a terminal) interpret ANSI colour codes.

    On Windows 10 and later this turns on virtual terminal processing for the
    console behind ``stream``; elsewhere terminals understand the codes already.

    :param stream: the stream about to receive colour codes.
    :returns: whether colour codes will be shown as colours.
    """
    if sys.platform == "win32":
        import ctypes
        import msvcrt
        from ctypes import wintypes

        enable_virtual_terminal_processing = 0x0004
        try:
            handle = msvcrt.get_osfhandle(stream.fileno())
        except (OSError, ValueError, AttributeError):
            return False
        kernel32 = ctypes.windll.kernel32
        mode = wintypes.DWORD()
        if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            return False
        if mode.value & enable_virtual_terminal_processing:
            return True
        new_mode = mode.value | enable_virtual_terminal_processing
        return bool(kernel32.SetConsoleMode(handle, new_mode))
    else:
        return True


def find_port_holder(port: int) -> PortHolder | None:
    """The process that listens on TCP ``port``, where the platform can tell.

    Linux reads ``/proc/net/tcp`` and ``/proc/net/tcp6`` and then the file
    descriptors under ``/proc`` (processes of other users stay unknown unless
    running as root); macOS and the BSDs ask ``lsof``; Windows asks ``netstat``
    and ``tasklist``. Never raises.

    :param port: the TCP port.
    :returns: the holder, or ``None`` when it cannot be found.
    """
    try:
        if sys.platform == "win32":
            return _holder_from_netstat(port)
        if sys.platform.startswith("linux") and os.path.exists("/proc/net/tcp"):
            holder = _holder_from_proc(port)
            if holder is not None:
                return holder
        return _holder_from_lsof(port)
    except Exception:  # a best-effort hint must never hide the real error
        return None


_TCP_LISTEN = "0A"


def _socket_inodes(port: int) -> list[str]:
    """Inodes of the sockets bound to ``port``, listening ones first."""
    listening: list[str] = []
    others: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as file:
                next(file, None)
                for line in file:
                    fields = line.split()
                    if len(fields) < 10:
                        continue
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    if local_port != port or fields[9] == "0":
                        continue
                    if fields[3] == _TCP_LISTEN:
                        listening.append(fields[9])
                    else:
                        others.append(fields[9])
        except OSError:
            continue
    return listening + others


def _holder_from_proc(port: int) -> PortHolder | None:
    inodes = _socket_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]": rank for rank, inode in enumerate(inodes)}
    best: tuple[int, int] | None = None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fd_dir = f"/proc/{entry.name}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            rank = wanted.get(target)
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, int(entry.name))
                break
    if best is None:
        return None
    pid = best[1]
    return PortHolder(pid, _proc_command(pid))


def _proc_command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            raw = file.read()
    except OSError:
        raw = b""
    args = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    if args:
        return " ".join(args)
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as file:
            return file.read().strip()
    except OSError:
        return "?"


def _run(args: list[str]) -> str:
    completed = subprocess.run(
        args,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=5,
        check=False,
    )
    return completed.stdout


def _holder_from_lsof(port: int) -> PortHolder | None:
    lsof = shutil.which("lsof") or (
        "/usr/sbin/lsof" if os.path.exists("/usr/sbin/lsof") else None
    )
    if lsof is None:
        return None
    output = _run([lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"])
    pid: int | None = None
    name = "?"
    for line in output.splitlines():
        if line.startswith("p") and pid is None:
            pid = int(line[1:])
        elif line.startswith("c") and pid is not None:
            name = line[1:]
            break
    if pid is None:
        return None
    command = _run(["ps", "-o", "command=", "-p", str(pid)]).strip()
    return PortHolder(pid, command or name)


def _holder_from_netstat(port: int) -> PortHolder | None:
    output = _run(["netstat", "-ano"])
    pid: int | None = None
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0].upper() == "TCP":
            if fields[1].rsplit(":", 1)[-1] == str(port) and fields[4].isdigit():
                pid = int(fields[4])
                if fields[3].upper() == "LISTENING":
                    break
    if pid is None:
        return None
    listing = _run(["tasklist", "/FI", f"PID eq {pid}", "/FO", "CSV", "/NH"])
    name = listing.split(",", 1)[0].strip().strip('"') if listing else ""
    return PortHolder(pid, name or "?")


# -- sockets of the development server ------------------------------------------

if sys.platform == "win32":
    #: ``recv()`` flag that makes one call non-blocking (0: not available).
    MSG_DONTWAIT = 0
    #: ``recv()`` flag that waits for every byte asked for (0: not used, as
    #: sockets here are in Python's timeout mode).
    MSG_WAITALL = 0

    def set_io_timeout(sock: t.Any, seconds: float) -> None:
        """Make reads and writes on ``sock`` fail after ``seconds`` of waiting.

        Windows has no per-call non-blocking flag, so this uses Python's
        socket timeout.
        """
        sock.settimeout(seconds)

else:
    import struct as _struct

    MSG_DONTWAIT = socket.MSG_DONTWAIT
    MSG_WAITALL = socket.MSG_WAITALL

    def set_io_timeout(sock: t.Any, seconds: float) -> None:
        """Make reads and writes on ``sock`` fail after ``seconds`` of waiting.

        The socket stays in blocking mode and the kernel enforces the timeout
        (``SO_RCVTIMEO``/``SO_SNDTIMEO``), so a read that is known to be ready
        costs one system call, not a ``poll()`` and a ``recv()``. A timed-out
        call raises ``BlockingIOError``.
        """
        if not sys.platform.startswith("linux"):
            sock.setblocking(True)  # BSD sockets inherit the listener's mode
        whole = int(seconds)
        value = _struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


# -- signals around fork() ----------------------------------------------------------

if sys.platform == "win32":

    def block_stop_signals() -> object:
        """Hold back SIGINT and SIGTERM for this thread (nothing on Windows).

        :returns: what :func:`restore_signal_mask` needs to undo it.
        """
        return None

    def restore_signal_mask(previous: object) -> None:
        """Undo :func:`block_stop_signals`; held-back signals arrive now."""

else:

    def block_stop_signals() -> object:
        """Hold back SIGINT and SIGTERM for this thread until
        :func:`restore_signal_mask`.

        Used around ``fork()``: a Ctrl+C that lands while a worker process is
        being set up is delivered once it can handle it, instead of raising
        KeyboardInterrupt in the middle of the fork (a traceback, or a child
        the parent never learnt about).

        :returns: the previous mask, for :func:`restore_signal_mask`.
        """
        return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    def restore_signal_mask(previous: object) -> None:
        """Undo :func:`block_stop_signals`; held-back signals arrive now."""
        signal.pthread_sigmask(
            signal.SIG_SETMASK, t.cast("set[signal.Signals]", previous)
        )


# -- Unix domain sockets --------------------------------------------------------

if sys.platform == "win32":
    #: ``socket.AF_UNIX``, or -1 where citus cannot listen on Unix sockets.
    AF_UNIX = -1
    #: Whether the server can listen on a Unix domain socket (``unix://PATH``).
    HAS_UNIX_SOCKETS = False

else:
    AF_UNIX: int = getattr(socket, "AF_UNIX", -1)
    HAS_UNIX_SOCKETS = AF_UNIX != -1


def is_unix_socket(sock: t.Any) -> bool:
    """Whether ``sock`` (a socket object) is a Unix domain socket."""
    return HAS_UNIX_SOCKETS and bool(sock.family == AF_UNIX)


# -- the debugger's private state folder -----------------------------------------

if sys.platform == "win32":

    def per_user_name(base: str) -> str:
        """The name of a per-user folder in the temporary folder: ``base``, as
        the temporary folder of Windows is already the user's own."""
        return base

    def is_private(info: os.stat_result) -> bool:
        """Whether a file or folder belongs to this user and nobody else may
        use it: always on Windows, where it lies in the user's own temporary
        folder and ``st_uid`` means nothing."""
        return True

    def process_alive(pid: int) -> bool:
        """Whether a process ``pid`` may exist.

        Always ``True`` on Windows: there is no safe probe without more code,
        so files named after a process are never swept there.
        """
        return True

else:

    def per_user_name(base: str) -> str:
        """The name of a per-user folder in the temporary folder: ``base``
        followed by the user id, as the temporary folder is shared."""
        return f"{base}-{os.getuid()}"

    def is_private(info: os.stat_result) -> bool:
        """Whether a file or folder belongs to this user and nobody else may
        use it: owned by this user, no permission for group or others."""
        return info.st_uid == os.getuid() and not info.st_mode & 0o077

    def process_alive(pid: int) -> bool:
        """Whether a process ``pid`` may exist (someone else's counts)."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # PermissionError: alive, and someone else's
            return True
        return True


# -- the reloader's children ------------------------------------------------------


def windows_console_script(args: list[str]) -> list[str]:
    """``args`` with a console script named without its suffix made runnable.

    On Windows ``sys.orig_argv`` may name a console script (``citus.exe``) as
    ``citus``; then the ``.exe`` (or the ``-script.py`` next to it) is run
    instead. Pure, so it can be tried on any platform.

    :param args: ``[python, script, *arguments]``.
    """
    if len(args) < 2 or args[1].startswith("-") or os.path.exists(args[1]):
        return args
    script = args[1]
    if os.path.isfile(script + ".exe"):
        return [script + ".exe", *args[2:]]
    if os.path.isfile(script + "-script.py"):
        return [args[0], script + "-script.py", *args[2:]]
    return args


if sys.platform == "win32":

    def runnable_args(args: list[str]) -> list[str]:
        """``args`` (this program's command line) in a form that starts it
        again: see :func:`windows_console_script`."""
        return windows_console_script(args)

    def popen_passing(socks: t.Sequence[t.Any]) -> dict[str, t.Any]:
        """Keyword arguments for ``subprocess.Popen`` that let the child
        inherit the sockets ``socks`` under the same numbers (and nothing else).

        Windows: the sockets become inheritable and are listed in the
        ``handle_list`` of the child's ``STARTUPINFO``.
        """
        for sock in socks:
            sock.set_inheritable(True)
        info = subprocess.STARTUPINFO()
        info.lpAttributeList = {"handle_list": [sock.fileno() for sock in socks]}
        return {"startupinfo": info}

    def child_stderr() -> tuple[int | None, int]:
        """Where a child's standard error goes: ``(None, subprocess.PIPE)``
        on Windows (no pseudo-terminals)."""
        return None, subprocess.PIPE

    def describe_exit_status(code: int) -> str:
        """How a child ended, from ``Popen.returncode``: ``exit status N``."""
        return f"exit status {code}"

else:

    def runnable_args(args: list[str]) -> list[str]:
        """``args`` (this program's command line) in a form that starts it
        again: unchanged on POSIX."""
        return args

    def popen_passing(socks: t.Sequence[t.Any]) -> dict[str, t.Any]:
        """Keyword arguments for ``subprocess.Popen`` that let the child
        inherit the sockets ``socks`` under the same numbers (``pass_fds``)."""
        return {"pass_fds": tuple(sock.fileno() for sock in socks)}

    def child_stderr() -> tuple[int | None, int]:
        """Where a child's standard error goes: ``(master, slave)`` of a
        pseudo-terminal when our standard error is a terminal, so that the
        child still sees one (and colours its output); else
        ``(None, subprocess.PIPE)``. The caller closes ``slave`` once the child
        has started and reads ``master``.
        """
        try:
            if not os.isatty(sys.stderr.fileno()):
                return None, subprocess.PIPE
        except (AttributeError, OSError, ValueError):
            return None, subprocess.PIPE
        import termios

        master, slave = os.openpty()
        try:
            attrs = termios.tcgetattr(slave)
            attrs[1] &= ~termios.OPOST  # our terminal turns \n into \r\n itself
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            try:
                size = fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
            except OSError:
                pass
        except (OSError, termios.error):
            os.close(master)
            os.close(slave)
            return None, subprocess.PIPE
        return master, slave

    def describe_exit_status(code: int) -> str:
        """How a child ended, from ``Popen.returncode``: ``exit status N`` or
        ``killed by SIGNAME``."""
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"


# -- passing connections between processes (the reloader) -----------------------

#: Most file descriptors sent with one message (Linux accepts up to 253).
MAX_PASSED_FDS = 64

if sys.platform == "win32":
    #: Whether open connections can move from one process to another over a
    #: Unix socket (``SCM_RIGHTS``): not on Windows, whose reloader children
    #: close their idle connections at a reload instead.
    CAN_PASS_CONNECTIONS = False

    def send_with_fds(sock: socket.socket, data: bytes, fds: t.Sequence[int]) -> None:
        """Send ``data`` on ``sock`` (Windows passes no file descriptors, and
        is never asked to)."""
        sock.sendall(data)

    def recv_with_fds(sock: socket.socket, size: int) -> tuple[bytes, list[int]]:
        """Up to ``size`` bytes from ``sock`` and the file descriptors that
        came with them (none on Windows)."""
        return sock.recv(size), []

else:
    CAN_PASS_CONNECTIONS = True

    def send_with_fds(sock: socket.socket, data: bytes, fds: t.Sequence[int]) -> None:
        """Send all of ``data`` on the Unix socket ``sock``, with copies of the
        file descriptors ``fds`` attached to its first byte (``SCM_RIGHTS``).

        The receiver holds its copies once it has read that byte; the sender
        may close its own at once.
        """
        sent = socket.send_fds(sock, [data], list(fds)) if fds else 0
        if sent < len(data):
            sock.sendall(data[sent:])

    def recv_with_fds(sock: socket.socket, size: int) -> tuple[bytes, list[int]]:
        """Up to ``size`` bytes from the Unix socket ``sock`` and the file
        descriptors that came with them, now open in this process (the caller
        owns them)."""
        data, fds, _flags, _address = socket.recv_fds(sock, size, 4 * MAX_PASSED_FDS)
        return data, list(fds)


# -- sharing listening sockets with other processes ------------------------------

if sys.platform == "win32":

    def make_nonblocking(sock: t.Any) -> int:
        """Put ``sock`` in non-blocking mode; returns what
        :func:`restore_blocking` needs (nothing on Windows)."""
        sock.setblocking(False)
        return 0

    def restore_blocking(sock: t.Any, saved: int) -> None:
        """Undo :func:`make_nonblocking`."""
        sock.setblocking(True)

    def allow_address_reuse(sock: t.Any) -> None:
        """Let a new server bind the port while old connections linger.

        Nothing on Windows, where ``SO_REUSEADDR`` would let two servers bind
        the same port.
        """

else:

    def make_nonblocking(sock: t.Any) -> int:
        """Put ``sock`` in non-blocking mode; returns its previous file status
        flags for :func:`restore_blocking`.

        Works on the file status flags, which processes sharing the socket
        share, without touching the Python object's timeout.
        """
        flags = fcntl.fcntl(sock.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(sock.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
        return flags

    def restore_blocking(sock: t.Any, saved: int) -> None:
        """Undo :func:`make_nonblocking` (a closed socket is left alone)."""
        try:
            fcntl.fcntl(sock.fileno(), fcntl.F_SETFL, saved)
        except OSError:
            pass

    def allow_address_reuse(sock: t.Any) -> None:
        """Let a new server bind the port while old connections linger
        (``SO_REUSEADDR``)."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


# -- SIGTERM ----------------------------------------------------------------------

if sys.platform == "win32":

    def stop_on_sigterm(stop: t.Callable[[], object]) -> t.Callable[[], None] | None:
        """Make SIGTERM call ``stop`` instead of ending the process.

        Nothing on Windows, where no other process can send SIGTERM.

        :returns: a function that puts the previous handler back, or ``None``
            when nothing was changed.
        """
        return None

else:

    def stop_on_sigterm(stop: t.Callable[[], object]) -> t.Callable[[], None] | None:
        """Make SIGTERM call ``stop`` instead of ending the process.

        Only in the main thread, and only while SIGTERM has its default action
        (a handler someone else installed is kept).

        :returns: a function that puts the previous handler back, or ``None``
            when nothing was changed.
        """
        if threading.current_thread() is not threading.main_thread():
            return None
        if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
            return None
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop())

        def restore() -> None:
            signal.signal(signal.SIGTERM, previous)

        return restore


# -- worker processes (processes=N) and the poller -------------------------------

if sys.platform == "win32":
    #: Whether ``os.fork()`` exists, so the server can run worker processes.
    CAN_FORK = False

    def fork_process() -> int:
        """``os.fork()``; Windows has none, so this raises ``OSError``."""
        raise OSError(errno.ENOSYS, "os.fork() is not available on Windows")

    def reap_child(pid: int) -> int | None:
        """The wait status of the forked child ``pid`` once it has ended, or
        ``None`` while it runs. Windows forks no children: ``ChildProcessError``."""
        raise ChildProcessError(errno.ECHILD, "no forked children on Windows")

    def kill_now(pid: int) -> None:
        """End process ``pid`` at once (``TerminateProcess`` on Windows)."""
        os.kill(pid, signal.SIGTERM)

    #: ``select.EPOLLIN`` (0 where there is no epoll).
    EPOLLIN = 0
    #: ``select.EPOLLIN | select.EPOLLONESHOT`` (0 where there is no epoll).
    EPOLLIN_ONESHOT = 0

    def open_epoll() -> t.Any:
        """A new ``select.epoll``, or ``None`` where there is none (Windows)."""
        return None

else:
    CAN_FORK = True

    def fork_process() -> int:
        """``os.fork()``, with the DeprecationWarning that Python 3.12 and
        later give for forking a process that has threads silenced: the server
        forks its workers on purpose."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return os.fork()

    def reap_child(pid: int) -> int | None:
        """The wait status of the forked child ``pid`` once it has ended (it is
        reaped), or ``None`` while it runs. Raises ``ChildProcessError`` when
        there is no such child."""
        done, status = os.waitpid(pid, os.WNOHANG)
        return status if done else None

    def kill_now(pid: int) -> None:
        """End process ``pid`` at once (SIGKILL)."""
        os.kill(pid, signal.SIGKILL)

    EPOLLIN: int = getattr(select, "EPOLLIN", 0)
    EPOLLIN_ONESHOT: int = EPOLLIN | getattr(select, "EPOLLONESHOT", 0)

    def open_epoll() -> t.Any:
        """A new ``select.epoll``, or ``None`` where there is none (not Linux)."""
        return select.epoll() if hasattr(select, "epoll") else None


# -- the shell --------------------------------------------------------------------


def enable_tab_completion(namespace: dict[str, t.Any]) -> None:
    """Let Tab complete names from ``namespace`` in ``code.interact()``,
    where a ``readline`` module exists (on Windows only with pyreadline3)."""
    try:
        readline = importlib.import_module("readline")
        import rlcompleter
    except ImportError:
        return
    readline.set_completer(rlcompleter.Completer(namespace).complete)
    readline.parse_and_bind("tab: complete")
