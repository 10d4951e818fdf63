"""Configuration from the environment: debug mode and ``.env`` files.

Shared by the command line and :meth:`citus.API.run`. :func:`get_debug_flag`
reads ``CITUS_DEBUG`` and ``CITUS_ENV``; :func:`load_dotenv` fills the
environment from an explicit file and from the nearest ``.env`` and
``.citusenv``, never overriding a variable that is already set;
:func:`reload_dotenv` applies the files again after one of them changed (the
reloader's supervisor calls it, see :func:`dotenv_watch_paths`).
:func:`mark_run_from_cli` and :func:`is_run_from_cli` tell ``app.run()`` that a
``citus`` command has loaded the app in this very process.
"""

from __future__ import annotations

import contextlib
import os
import time
import typing as t
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

#: The files :func:`load_dotenv` looks for, highest precedence first.
DOTENV_NAMES = (".env", ".citusenv")

#: The file and value of each variable that :func:`load_dotenv` set.
_origins: dict[str, tuple[Path, str]] = {}
#: The explicit file given to :func:`load_dotenv` (``--env-file``), once it ran.
_explicit: list[Path | None] = []
#: ``time.time()`` when :func:`load_dotenv` last read the files.
_loaded_at: list[float] = []

#: Set by ``citus run``, ``routes`` and ``shell`` to the id of their process.
RUN_FROM_CLI_ENV = "CITUS_RUN_FROM_CLI"


def mark_run_from_cli() -> None:
    """Record that a ``citus`` command loads the app in this process.

    Sets ``CITUS_RUN_FROM_CLI`` to this process's id rather than to a flag, so
    that the programs the app starts, which inherit the environment, are not
    taken for the ``citus`` process: their own ``app.run()`` still serves. A
    reloader child runs the command again and marks itself.
    """
    os.environ[RUN_FROM_CLI_ENV] = str(os.getpid())


#: Flask's own flag, which every ``flask`` command sets: a Flask app's
#: ``app.run()`` then returns at once (with Flask's note) instead of serving.
FLASK_RUN_FROM_CLI_ENV = "FLASK_RUN_FROM_CLI"


@contextlib.contextmanager
def flask_app_run_ignored() -> t.Iterator[None]:
    """While a ``citus`` command loads the app: set Flask's flag, as ``flask``
    commands do, so that an ``app.run()`` a Flask module calls at import (no
    ``__main__`` guard) does not start Werkzeug's server in citus's place.

    Only for the loading, and only in a process that :func:`mark_run_from_cli`
    marked: programs the app starts later do not inherit it, so their own
    ``app.run()`` serves (the rule of ``CITUS_RUN_FROM_CLI``).
    """
    if not is_run_from_cli():
        yield
        return
    before = os.environ.get(FLASK_RUN_FROM_CLI_ENV)
    os.environ[FLASK_RUN_FROM_CLI_ENV] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(FLASK_RUN_FROM_CLI_ENV, None)
        else:
            os.environ[FLASK_RUN_FROM_CLI_ENV] = before


def is_run_from_cli() -> bool:
    """Whether a ``citus`` command loaded the app in this process.

    Reads ``CITUS_RUN_FROM_CLI`` (see :func:`mark_run_from_cli`); a value
    inherited from another process does not count.
    """
    return os.environ.get(RUN_FROM_CLI_ENV) == str(os.getpid())


class EnvFileError(Exception):
    """A ``.env``-style file that cannot be read: not UTF-8, or unreadable.

    :param path: the file.
    :param reason: why, as a sentence that ends with the fix.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        super().__init__(f"Could not load {str(path)!r}: {reason}")


def parse_bool(value: str) -> bool | None:
    """``True``/``False`` for ``1/0``, ``true/false``, ``yes/no``, ``on/off``.

    :param value: the text to read, in any case, surrounding spaces ignored.
    :returns: ``None`` when ``value`` is none of these.
    """
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


def get_debug_flag() -> bool:
    """Whether debug mode is on, from ``CITUS_DEBUG`` then ``CITUS_ENV``.

    Reads ``CITUS_DEBUG`` (``1``/``0``, ``true``/``false``, ``yes``/``no``), which
    wins over ``CITUS_ENV`` (``development`` turns debug mode on).
    """
    value = os.environ.get("CITUS_DEBUG")
    if value is not None:
        flag = parse_bool(value)
        if flag is not None:
            return flag
    return os.environ.get("CITUS_ENV", "production").strip().lower() == "development"


def find_dotenv_files(start: str | os.PathLike[str] | None = None) -> list[Path]:
    """The nearest ``.env`` and the nearest ``.citusenv``, from ``start`` up.

    :param start: the folder to start from; the current folder by default.
    :returns: the files found, ``.env`` first; each name at most once (none
        when the current folder no longer exists).
    """
    if start is None:
        try:
            start = os.getcwd()
        except FileNotFoundError:  # the current folder was deleted
            return []
    here = Path(start).resolve()
    found: list[Path] = []
    for name in DOTENV_NAMES:
        for folder in (here, *here.parents):
            candidate = folder / name
            if candidate.is_file():
                found.append(candidate)
                break
    return found


def load_dotenv(path: str | os.PathLike[str] | None = None) -> bool:
    """Load environment variables from ``path``, ``.env`` and ``.citusenv``.

    Precedence, highest first: variables already in the environment, ``path``,
    the nearest ``.env``, the nearest ``.citusenv`` (each searched from the
    current folder up). A variable already set is never overridden.

    Needs python-dotenv (``pip install 'citus[dotenv]'``). Without it nothing
    is loaded and, when such files exist, a one-line hint says what to install
    (not in a reloader child, where ``CITUS_RUN_MAIN`` is ``true``: the first
    process said it already).

    :param path: one more file to load, above the two defaults (the command
        line's ``--env-file``).
    :returns: ``True`` if at least one file was loaded.
    :raises EnvFileError: when a file is not UTF-8 or cannot be read.
    """
    files = find_dotenv_files()
    if path is not None and Path(path).is_file():
        files.insert(0, Path(path))
    try:
        from dotenv import dotenv_values
    except ImportError:
        # Said once: not again by each child that the reloader starts.
        if files and os.environ.get("CITUS_RUN_MAIN") != "true":
            from ._log import echo

            names = " and ".join(repr(str(p)) for p in files)
            which = "they were" if len(files) > 1 else "it was"
            echo(
                f" * Tip: found {names} but python-dotenv is not installed, so"
                f" {which} not loaded. Install it: pip install 'citus[dotenv]'"
            )
        return False
    _explicit[:] = [Path(path).resolve() if path is not None else None]
    _loaded_at[:] = [time.time()]
    for key, (file, value) in _values_of(files, dotenv_values).items():
        if key not in os.environ:
            os.environ[key] = value
            _origins[key] = (file, value)
    return bool(files)


def _values_of(
    files: list[Path], dotenv_values: t.Callable[..., t.Mapping[str, str | None]]
) -> dict[str, tuple[Path, str]]:
    """Each variable of ``files`` with the first file (highest precedence) that
    sets it; everything is read before anything is applied."""
    found: dict[str, tuple[Path, str]] = {}
    for file in files:
        for key, value in _read_env_file(file, dotenv_values).items():
            if value is not None and key not in found:
                found[key] = (file, value)
    return found


def loaded_at() -> float | None:
    """``time.time()`` when :func:`load_dotenv` read the files, if it did."""
    return _loaded_at[0] if _loaded_at else None


def dotenv_watch_paths() -> list[Path]:
    """The files whose change alters what :func:`load_dotenv` would load.

    The explicit file, and for ``.env`` and ``.citusenv`` every place from the
    current folder up to the nearest one found (a nearer file created later
    takes over), or the current folder's when there is none. Empty when
    :func:`load_dotenv` has not loaded files in this process (never called, or
    python-dotenv is missing).
    """
    if not _explicit:
        return []
    try:
        here = Path(os.getcwd()).resolve()
    except FileNotFoundError:
        return []
    found: list[Path] = [p for p in _explicit if p is not None]
    for name in DOTENV_NAMES:
        chain: list[Path] = []
        for folder in (here, *here.parents):
            chain.append(folder / name)
            if chain[-1].is_file():
                found.extend(chain)
                break
        else:
            found.append(here / name)
    return found


def reload_dotenv() -> dict[str, str | None]:
    """Read the ``.env``-style files again and apply them to the environment.

    Variables that :func:`load_dotenv` set and that nobody changed since are
    replaced by the files' new values, or removed when no file sets them any
    more; anything else (the real environment, a value set by a command-line
    option) keeps winning, with the precedence of :func:`load_dotenv`. Does
    nothing when :func:`load_dotenv` loaded no files in this process.

    :returns: the variables that changed, with their new value (``None``:
        removed).
    :raises EnvFileError: when a file cannot be read; nothing is changed then.
    """
    if not _explicit:
        return {}
    from dotenv import dotenv_values

    files = find_dotenv_files()
    path = _explicit[0]
    if path is not None and path.is_file():
        files.insert(0, path)
    values = _values_of(files, dotenv_values)
    before = {key: os.environ.get(key) for key in {*_origins, *values}}
    for key, (_, value) in list(_origins.items()):
        if os.environ.get(key) == value:
            del os.environ[key]
        del _origins[key]
    for key, (file, value) in values.items():
        if key not in os.environ:
            os.environ[key] = value
            _origins[key] = (file, value)
    return {
        key: os.environ.get(key)
        for key, old in before.items()
        if os.environ.get(key) != old
    }


def _read_env_file(
    file: Path, dotenv_values: t.Callable[..., t.Mapping[str, str | None]]
) -> dict[str, str | None]:
    """The variables of ``file``; an :class:`EnvFileError` if it can't be read."""
    try:
        return dict(dotenv_values(file, encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise EnvFileError(
            file,
            f"it is not UTF-8 text (byte {error.object[error.start]:#04x} at"
            f" offset {error.start}). Save it as UTF-8.",
        ) from None
    except OSError as error:
        raise EnvFileError(
            file, f"{error.strerror or error}. Fix its permissions, or remove it."
        ) from None


def dotenv_origin(name: str) -> Path | None:
    """The file that :func:`load_dotenv` took the variable ``name`` from.

    :returns: ``None`` when the value of ``name`` did not come from a file
        loaded by this process (it was set before or changed since, or it is
        not set).
    """
    file, value = _origins.get(name, (None, None))
    if file is None or os.environ.get(name) != value:
        return None
    return file
