"""``citus._env``: the debug flag and ``.env`` / ``.citusenv`` loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from citus._env import (
    EnvFileError,
    _read_env_file,
    find_dotenv_files,
    get_debug_flag,
    load_dotenv,
    parse_bool,
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("CITUS_DEBUG", "CITUS_ENV", "X_ONE", "X_TWO", "X_THREE", "X_FOUR"):
        # setenv first so that monkeypatch restores (removes) what tests add.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    monkeypatch.chdir(project / "sub")
    return project


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), ("0", False), ("no", False),
     ("False", False), ("maybe", None)],
)  # fmt: skip
def test_parse_bool(value: str, expected: bool | None) -> None:
    assert parse_bool(value) is expected


def test_debug_flag_precedence(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert get_debug_flag() is False
    monkeypatch.setenv("CITUS_ENV", "development")
    assert get_debug_flag() is True
    monkeypatch.setenv("CITUS_DEBUG", "0")
    assert get_debug_flag() is False
    monkeypatch.setenv("CITUS_ENV", "production")
    monkeypatch.setenv("CITUS_DEBUG", "yes")
    assert get_debug_flag() is True


def test_nearest_files_are_found_upwards(clean_env: Path) -> None:
    (clean_env / ".env").write_text("X_ONE=from-env\n")
    (clean_env / "sub" / ".citusenv").write_text("X_ONE=from-citusenv\n")
    (clean_env.parent / ".citusenv").write_text("X_ONE=too-far\n")
    assert find_dotenv_files() == [
        (clean_env / ".env").resolve(),
        (clean_env / "sub" / ".citusenv").resolve(),
    ]


def test_precedence_and_no_override(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".citusenv").write_text(
        "X_ONE=citusenv\nX_TWO=citusenv\nX_THREE=citusenv\nX_FOUR=citusenv\n"
    )
    (clean_env / ".env").write_text("X_ONE=env\nX_TWO=env\nX_THREE=env\n")
    explicit = clean_env / "custom.env"
    explicit.write_text("X_ONE=explicit\nX_TWO=explicit\n")
    monkeypatch.setenv("X_ONE", "real")
    assert load_dotenv(explicit) is True
    assert os.environ["X_ONE"] == "real"
    assert os.environ["X_TWO"] == "explicit"
    assert os.environ["X_THREE"] == "env"
    assert os.environ["X_FOUR"] == "citusenv"


def test_nothing_to_load(clean_env: Path) -> None:
    assert load_dotenv() is False


def test_a_file_that_is_not_utf8_is_named(clean_env: Path) -> None:
    (clean_env / ".env").write_bytes(b"X_ONE=caf\xe9\n")
    with pytest.raises(EnvFileError) as caught:
        load_dotenv()
    assert str(caught.value) == (
        f"Could not load {str(clean_env / '.env')!r}: it is not UTF-8 text"
        " (byte 0xe9 at offset 9). Save it as UTF-8."
    )
    assert "X_ONE" not in os.environ


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    # Permissions do not stop root, so the read itself is made to fail.
    def refuse(path: Path, encoding: str) -> dict[str, str | None]:
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.raises(EnvFileError) as caught:
        _read_env_file(tmp_path / ".env", refuse)
    assert str(caught.value) == (
        f"Could not load {str(tmp_path / '.env')!r}: Permission denied. Fix its"
        " permissions, or remove it."
    )
