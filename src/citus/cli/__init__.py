"""The ``citus`` / ``cts`` command line (placeholder until the CLI issue lands)."""

from __future__ import annotations

import sys

import click

from .. import __version__


@click.group()
@click.version_option(
    __version__,
    prog_name="citus",
    message=f"%(prog)s %(version)s\nPython {sys.version.split()[0]}",
)
def main() -> None:
    """citus: run and manage citus and other WSGI applications."""
