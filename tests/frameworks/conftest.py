"""Fixtures for the framework tests: real projects of each framework.

``django_site`` makes a Django project with ``django-admin startproject`` at
test time (plus a home page rendered from a template of the project's own),
``flaskr`` copies Flask's tutorial app (``projects/flaskr``) into the test's
folder, so that its instance folder and database are the test's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: The fixture projects shipped with the tests.
PROJECTS = Path(__file__).parent / "projects"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without ``CITUS_*`` or ``DJANGO_*`` variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CITUS_", "DJANGO_", "FLASK_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


@pytest.fixture
def flaskr(tmp_path: Path) -> Path:
    """A copy of the flaskr tutorial project; the folder to run citus in."""
    pytest.importorskip("flask")
    folder = tmp_path / "flaskr-project"
    shutil.copytree(PROJECTS / "flaskr", folder)
    return folder


#: Appended to the project's urls.py: a page rendered from the project's own
#: templates folder.
HOME_URLS = """
from django.shortcuts import render


def home(request):
    return render(request, "home.html", {"who": "citus"})


urlpatterns += [path("", home, name="home")]
"""


@pytest.fixture
def django_site(tmp_path: Path) -> Path:
    """A fresh ``django-admin startproject mysite``, with a home page; the
    folder holding ``manage.py``."""
    pytest.importorskip("django")
    folder = tmp_path / "site"
    folder.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(folder)],
        check=True,
        env=clean_env(),
        timeout=60,
    )
    edit(
        folder / "mysite" / "settings.py",
        "'DIRS': [],",
        "'DIRS': [BASE_DIR / 'templates'],",
    )
    urls = folder / "mysite" / "urls.py"
    urls.write_text(urls.read_text(encoding="utf-8") + HOME_URLS, encoding="utf-8")
    (folder / "templates").mkdir()
    (folder / "templates" / "home.html").write_text(
        "<!doctype html><title>Home</title><p>Hello from {{ who }}, version 1",
        encoding="utf-8",
    )
    return folder


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) with ``new`` in the file ``path``."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the tests' Python in ``cwd``; the finished process."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
