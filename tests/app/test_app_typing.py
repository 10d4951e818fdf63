"""The public names are typed as SPEC.md writes them: a user's code that uses
them passes ``mypy --strict``, and ``assert_type`` pins what they return."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

USER_CODE = """
from __future__ import annotations

import typing as t

from typing_extensions import assert_type  # installed with mypy

import citus
from citus import (
    API,
    Request,
    Response,
    abort,
    current_app,
    render_template,
    render_template_string,
    request,
    url_for,
)
from citus.exceptions import HTTPException, NotFound
from citus.testing import Client, TestResponse

app = API(__name__)
assert_type(app.config, dict[str, t.Any])
assert_type(app.debug, bool)


@app.route("/users/<int:user_id>", methods=["GET", "POST"], subdomain="api")
def user(user_id: int) -> dict[str, int]:
    assert_type(request, Request)
    assert_type(request.method, str)
    assert_type(request.args.get("page"), str | None)
    assert_type(request.args.getlist("tag"), list[str])
    assert_type(request.headers.get("X-Token"), str | None)
    assert_type(request.cookies.get("session"), str | None)
    assert_type(request.remote_addr, str | None)
    assert_type(url_for("user", user_id=1), str)
    assert_type(current_app, API)
    assert_type(render_template("user.html", user_id=user_id), str)
    assert_type(render_template_string("{{ n }}", n=1), str)
    if user_id == 0:
        abort(404)
    if user_id == 1:
        abort(Response("Log in first.", status=401))
    return {"id": user_id}


# The decorators keep the view's own type.
assert_type(user(1), dict[str, int])


@app.errorhandler(NotFound)
def not_found(error: HTTPException) -> tuple[dict[str, str], int]:
    return {"error": error.name}, error.code


@Request.application
def plain(req: Request) -> Response:
    response = Response("hi", status=201, headers={"X-A": "1"}, mimetype="text/plain")
    response.set_cookie("s", "v", samesite="Lax", partitioned=True)
    assert_type(response.status_code, int)
    return response


assert_type(Response.json({"a": 1}, status=201), Response)
assert_type(app.url_for("user", user_id=1, _external=True), str)
client = app.test_client()
assert_type(client, Client)
assert_type(client.get("/users/1"), TestResponse)
assert_type(citus.__version__, str)
assert_type(API(__name__, template_folder="views").template_folder, str)

if __name__ == "__main__":
    app.run(host=None, port=None, debug=True, load_dotenv=False, threaded=True)
"""


def test_user_code_passes_mypy_strict(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("mypy")
    mypy = str(exe) if exe.exists() else shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    module = tmp_path / "user_app.py"
    module.write_text(textwrap.dedent(USER_CODE), encoding="utf-8")
    result = subprocess.run(
        [
            mypy,
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            str(module),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
