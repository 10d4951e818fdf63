"""The banner's framework, read from the app module's imports without
running it (what ``citus run``'s supervisor, which never imports the app,
says in ``* Serving Flask app 'flaskr'``)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from citus.frameworks.guess import guess_banner_kind


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write(root: Path, name: str, source: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")


def test_direct_imports(project: Path) -> None:
    write(project, "f1.py", "from flask import Flask\napp = Flask(__name__)\n")
    write(project, "d1.py", "from django.core.wsgi import get_wsgi_application\n")
    write(project, "b1.py", "import bottle\n")
    write(project, "c1.py", "from citus import API\napp = API(__name__)\n")
    write(
        project,
        "w1.py",
        "import os\ndef app(environ, start_response):\n    return []\n",
    )
    assert guess_banner_kind("f1") == "Flask"
    assert guess_banner_kind("d1") == "Django"
    assert guess_banner_kind("b1") == "Bottle"
    assert guess_banner_kind("c1") == "citus"
    assert guess_banner_kind("w1") == "citus"
    assert guess_banner_kind("nosuchmodule") == "citus"
    assert "f1" not in sys.modules  # nothing was run


def test_project_imports_are_followed(project: Path) -> None:
    """wsgi.py -> the project's package -> its submodule that imports Flask."""
    write(project, "wsgi.py", "from shop import create_app\napp = create_app()\n")
    write(project, "shop/__init__.py", "from .factory import create_app\n")
    write(project, "shop/factory.py", "import flask\ndef create_app(): ...\n")
    assert guess_banner_kind("wsgi") == "Flask"
    assert "shop" not in sys.modules


def test_syntax_error_is_no_guess(project: Path) -> None:
    write(project, "broken.py", "from flask import (\n")
    assert guess_banner_kind("broken") == "citus"
