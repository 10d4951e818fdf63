"""Parameter types and option helpers for the ``citus`` command line.

:class:`CertParamType` reads ``--cert`` (``adhoc`` or a file),
:class:`SeparatedPathList` splits ``--extra-files`` and ``--exclude-patterns``
on :data:`os.pathsep`, and :func:`check_ssl_options` turns ``--cert`` and
``--key`` into the ``ssl_context`` that :func:`citus.serving.run_simple` takes,
or a usage error. :class:`EnvOption` names the environment variable a bad value
came from, so that ``CITUS_RUN_PORT=x`` is not a puzzle.
"""

from __future__ import annotations

import os
import typing as t

import click
from click.core import ParameterSource

#: The prefix of the environment variables that set ``citus run``'s options.
RUN_ENV_PREFIX = "CITUS_RUN_"

if t.TYPE_CHECKING:
    # click 8.2+ makes ParamType generic; 8.1 cannot subscribe it at run time.
    _ParamType = click.ParamType[t.Any]
else:
    _ParamType = click.ParamType


class EnvOption(click.Option):
    """An option whose errors say when the bad value came from the environment."""

    def process_value(self, ctx: click.Context, value: t.Any) -> t.Any:
        """Convert ``value``; name the environment variable in any error."""
        try:
            return super().process_value(ctx, value)
        except click.BadParameter as error:
            source = ctx.get_parameter_source(self.name or "")
            envvar = self.envvar if isinstance(self.envvar, str) else None
            if source is ParameterSource.ENVIRONMENT and envvar:
                raise click.BadParameter(
                    f"{error.message} (from the environment variable {envvar};"
                    " fix or unset it)",
                    ctx=ctx,
                    param=self,
                ) from None
            raise


_F = t.TypeVar("_F", bound=t.Callable[..., t.Any])


def run_option(*decls: str, **attrs: t.Any) -> t.Callable[[_F], _F]:
    """A ``citus run`` option that can also come from ``CITUS_RUN_<OPTION>``."""
    name = max((d.lstrip("-") for d in decls if d.startswith("--")), key=len)
    name = name.split("/")[0]
    attrs.setdefault("envvar", RUN_ENV_PREFIX + name.replace("-", "_").upper())
    attrs.setdefault("cls", EnvOption)
    return click.option(*decls, **attrs)


class CertParamType(_ParamType):
    """``--cert``: the word ``adhoc`` or the path of an existing certificate file."""

    name = "path|adhoc"

    def convert(
        self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> t.Any:
        """``"adhoc"``, or the path after checking that the file exists."""
        if value == "adhoc":
            return value
        return click.Path(exists=True, dir_okay=False, resolve_path=True).convert(
            value, param, ctx
        )


class SeparatedPathList(_ParamType):
    """A list of paths or patterns separated by :data:`os.pathsep`.

    ``:`` on POSIX, ``;`` on Windows, like ``PATH``. Empty items are dropped.
    """

    name = "list"

    def convert(
        self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> t.Any:
        """Split ``value`` into a list of strings."""
        if isinstance(value, (list, tuple)):
            return list(value)
        return [item for item in str(value).split(os.pathsep) if item]


def check_ssl_options(
    cert: str | None, key: str | None
) -> tuple[str, str] | str | None:
    """The ``ssl_context`` for ``--cert``/``--key``, or a usage error.

    :raises click.UsageError: for ``--key`` without ``--cert``, ``--key`` with
        ``--cert adhoc``, ``--cert FILE`` without ``--key``, or ``adhoc``
        without the cryptography package.
    """
    if key is not None and cert is None:
        raise click.UsageError(
            f"--key {key!r} needs --cert: give the certificate too"
            " (--cert cert.pem --key key.pem), or use --cert adhoc alone."
        )
    if cert == "adhoc":
        if key is not None:
            raise click.UsageError(
                "--key cannot be used with --cert adhoc: an ad-hoc certificate"
                " makes its own key. Drop --key, or pass a certificate file to"
                " --cert."
            )
        try:
            import cryptography  # noqa: F401
        except ImportError:
            raise click.UsageError(
                "--cert adhoc needs the cryptography package to make a"
                " certificate. Install it: pip install 'citus[ssl]'."
            ) from None
        return "adhoc"
    if cert is not None:
        if key is None:
            raise click.UsageError(
                f"--cert {cert!r} needs --key: give the certificate's private"
                " key file too (--key key.pem)."
            )
        return (cert, key)
    return None
