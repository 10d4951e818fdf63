"""Which file systems send no change events for changes made elsewhere.

File-system events (inotify on Linux) report the changes that the kernel
running citus makes. On a folder shared from another machine or from the host
of a virtual machine or a container (Docker Desktop's bind mounts: 9p,
virtiofs, grpcfuse, other FUSE file systems; NFS, SMB/CIFS, sshfs; WSL2's
``/mnt/c``), an editor running on the other side changes the files without
this kernel knowing: no event ever arrives, and a reloader that waits for
events never reloads. The events backend polls the folders on such mounts
instead (see :mod:`.watchdog_backend`).

The mount table is ``/proc/self/mountinfo`` (Linux only; elsewhere nothing is
known and every folder is watched by events). Set ``CITUS_RELOADER_MOUNTINFO``
to the path of another file in the same format to use it instead (tests).
"""

from __future__ import annotations

import os
import re
import typing as t

#: A file in ``/proc/self/mountinfo`` format to read instead of it.
MOUNTINFO_ENV = "CITUS_RELOADER_MOUNTINFO"
#: Where Linux describes the mounts this process sees.
MOUNTINFO = "/proc/self/mountinfo"

#: File system types that deliver no events for changes made elsewhere, with
#: what they usually are. Any ``fuse.*`` type counts too.
NO_EVENTS: dict[str, str] = {
    "9p": "a folder shared by a VM host, such as WSL2's Windows drives",
    "virtiofs": "a folder shared by a VM host, such as Docker Desktop's",
    "grpcfuse": "Docker Desktop's file sharing",
    "fakeowner": "Docker Desktop's file sharing",
    "vboxsf": "a VirtualBox shared folder",
    "drvfs": "a Windows drive under WSL",
    "nfs": "a network file system",
    "nfs4": "a network file system",
    "cifs": "a Windows (SMB) network share",
    "smb3": "a Windows (SMB) network share",
    "smbfs": "a Windows (SMB) network share",
    "sshfs": "a folder mounted over SSH",
    "fuse.sshfs": "a folder mounted over SSH",
    "fuse.grpcfuse": "Docker Desktop's file sharing",
}
_WSL_DRIVE = re.compile(r"^/mnt/[a-z](/|$)")
_ESCAPE = re.compile(r"\\([0-7]{3})")


class Mount(t.NamedTuple):
    """One line of the mount table."""

    #: Where it is mounted.
    point: str
    #: Its file system type (``ext4``, ``nfs4``, ``fuse.sshfs``...).
    fstype: str
    #: What is mounted (a device, a share, ``drvfs``...).
    source: str


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a ``/proc/self/mountinfo`` text, in its order; lines
    that do not parse are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            dash = fields.index("-", 6)
            point = _unescape(fields[4])
            fstype, source = fields[dash + 1], _unescape(fields[dash + 2])
        except (ValueError, IndexError):
            continue
        mounts.append(Mount(point, fstype, source))
    return mounts


_table: tuple[str, list[Mount]] | None = None


def mount_table() -> list[Mount]:
    """The mounts this process sees (cached per source file); empty where
    the table cannot be read (any system but Linux).

    Reads ``CITUS_RELOADER_MOUNTINFO``, else ``/proc/self/mountinfo``.
    """
    global _table
    source = os.environ.get(MOUNTINFO_ENV) or MOUNTINFO
    if _table is None or _table[0] != source:
        try:
            with open(source, encoding="utf-8", errors="replace") as file:
                mounts = parse_mountinfo(file.read())
        except OSError:
            mounts = []
        _table = (source, mounts)
    return _table[1]


def mount_of(path: str, table: list[Mount] | None = None) -> Mount | None:
    """The mount that holds ``path`` (symbolic links resolved): the longest
    mount point above it, the last mounted when several share it."""
    if table is None:
        table = mount_table()
    real = os.path.realpath(path)
    found: Mount | None = None
    for mount in table:
        point = mount.point.rstrip("/") or "/"
        inside = point == "/" or real == point or real.startswith(point + "/")
        if inside and (found is None or len(point) >= len(found.point.rstrip("/"))):
            found = mount
    return found


def why_no_events(mount: Mount) -> str | None:
    """Why changes on ``mount`` may send no events (what it usually is), or
    ``None`` when events can be trusted there."""
    fstype = mount.fstype
    if fstype in ("9p", "drvfs") and (
        _WSL_DRIVE.match(mount.point) or mount.source == "drvfs"
    ):
        return "a Windows drive under WSL"
    if fstype in NO_EVENTS:
        return NO_EVENTS[fstype]
    if fstype.startswith("fuse.") or fstype == "fuse":
        return "a FUSE file system"
    return None
