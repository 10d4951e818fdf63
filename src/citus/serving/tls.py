"""TLS for the development server: contexts and self-signed certificates.

Placeholder: the listening issue replaces this module.
"""

from __future__ import annotations

import ssl


def load_ssl_context(
    value: ssl.SSLContext | tuple[str, str] | str | None,
) -> ssl.SSLContext | None:
    """Turn ``run_simple``'s ``ssl_context`` argument into a server context."""
    if value is None or isinstance(value, ssl.SSLContext):
        return value
    raise NotImplementedError("TLS is not available yet")


def make_ssl_devcert(
    base_path: str, host: str | None = None, cn: str | None = None
) -> tuple[str, str]:
    """Write ``base_path.crt`` and ``base_path.key``; return both paths."""
    raise NotImplementedError("TLS is not available yet")
