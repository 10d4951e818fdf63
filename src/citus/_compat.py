"""Platform differences in one place: code that must differ between POSIX and
Windows lives here, behind names that are the same on both.

Each branch tests ``sys.platform == "win32"`` literally so that mypy narrows it,
and both branches define the same names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import typing as t

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

    def set_io_timeout(sock: t.Any, seconds: float) -> None:
        """Make reads and writes on ``sock`` fail after ``seconds`` of waiting.

        Windows has no per-call non-blocking flag, so this uses Python's
        socket timeout.
        """
        sock.settimeout(seconds)

else:
    import socket as _socket
    import struct as _struct

    MSG_DONTWAIT = _socket.MSG_DONTWAIT

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
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO, value)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDTIMEO, value)


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
    import signal as _signal

    def block_stop_signals() -> object:
        """Hold back SIGINT and SIGTERM for this thread until
        :func:`restore_signal_mask`.

        Used around ``fork()``: a Ctrl+C that lands while a worker process is
        being set up is delivered once it can handle it, instead of raising
        KeyboardInterrupt in the middle of the fork (a traceback, or a child
        the parent never learnt about).

        :returns: the previous mask, for :func:`restore_signal_mask`.
        """
        return _signal.pthread_sigmask(
            _signal.SIG_BLOCK, {_signal.SIGINT, _signal.SIGTERM}
        )

    def restore_signal_mask(previous: object) -> None:
        """Undo :func:`block_stop_signals`; held-back signals arrive now."""
        _signal.pthread_sigmask(
            _signal.SIG_SETMASK, t.cast("set[_signal.Signals]", previous)
        )
