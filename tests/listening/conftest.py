"""Fixtures for the listening tests: IPv6 availability."""

from __future__ import annotations

import pytest

from citus.serving.sockets import has_ipv6

#: Why the ::1 half of a test is skipped, when it is.
NO_IPV6 = "this machine cannot listen on ::1 (no IPv6 loopback)"


@pytest.fixture
def ipv6() -> None:
    """Skip the test, saying why, where the machine has no IPv6 loopback."""
    if not has_ipv6():
        pytest.skip(NO_IPV6)
