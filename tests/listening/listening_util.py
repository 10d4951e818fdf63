"""Helpers shared by the listening tests: raw loopback clients, no mocks."""

from __future__ import annotations

import socket


def connect_and_accept(
    listener: socket.socket, address: tuple[str, int]
) -> tuple[str, int]:
    """Connect to ``address``, accept on ``listener``; the peer address seen."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(address)
        listener.settimeout(5)
        conn, peer = listener.accept()
        conn.close()
    return str(peer[0]), int(peer[1])


def http_get(
    address: tuple[str, int] | str, path: str = "/", host: str = "localhost"
) -> bytes:
    """Send ``GET path`` over TCP (``(host, port)``) or a Unix socket (a path);
    return everything the server sends until it closes."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)
