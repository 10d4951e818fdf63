"""The frameworks interface asked about a real ``startproject`` project, in a
child process (Django's settings are configured once per process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import edit, run_python

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ASK = """
    import json, os, sys
    os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    sys.path.insert(0, os.getcwd())
    from mysite.wsgi import application
    from citus.frameworks import detect

    found = detect(application)
    answers = {
        "name": found.name,
        "kind": found.banner_kind(),
        "routes": [list(r) for r in found.routes()],
        "static": found.static_folders(),
        "templates": found.template_folders(),
        "shell": sorted(found.shell_context()),
        "banner": found.banner_lines(),
    }
    EXTRA
    print(json.dumps(answers))
"""


def ask(site: Path, extra: str = "") -> dict[str, object]:
    result = run_python(ASK.replace("EXTRA", extra), site)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_startproject_answers(django_site: Path) -> None:
    import django

    answers = ask(django_site)
    assert answers["name"] == "Django" and answers["kind"] == "Django"
    admin_static = str(Path(django.__file__).parent / "contrib" / "admin" / "static")
    assert answers["static"] == [["/static", admin_static]]
    assert answers["templates"] == [str(django_site / "templates")]
    routes = answers["routes"]
    assert isinstance(routes, list)
    by_name = {row[0]: row for row in routes}
    # endpoint, methods, rule, host, subdomain, view
    assert by_name["home"] == ["home", [], "/", "", "", "mysite.urls.home"]
    login = by_name["admin:login"]
    assert login[2] == "/admin/login/" and login[5].endswith("AdminSite.login")
    assert [
        "admin:index",
        [],
        "/admin/",
        "",
        "",
        login[5].replace("login", "index"),
    ] in routes
    assert {"settings", "User", "Group", "Session"} <= set(answers["shell"])  # type: ignore[arg-type]
    assert answers["banner"] == [
        f" * Django version {django.get_version()}, using settings 'mysite.settings'"
    ]


def test_the_served_app_answers_as_the_project(django_site: Path) -> None:
    """What citus run serves (the project in staticfiles' handler) is
    detected as the project, with the same folders."""
    extra = """
    served = found.serving_app(static=True)
    again = detect(served)
    answers["same"] = again is found and again.static_folders() == answers["static"]
    answers["handler"] = type(served).__name__
    plain = detect(application).serving_app(static=False)
    answers["no_static"] = detect(plain).static_folders()
    """
    answers = ask(django_site, extra)
    assert answers["same"] is True and answers["handler"] == "StaticFilesHandler"
    assert answers["no_static"] == []


def test_checks(django_site: Path) -> None:
    extra = """
    from citus.frameworks import CheckFailedError
    try:
        answers["check"] = found.check()
    except CheckFailedError as error:
        answers["check"] = [type(error).__name__, error.message]
        answers["before"] = error.lines
    """
    lines = ask(django_site, extra)["check"]
    assert lines[:3] == [  # type: ignore[index]
        "Performing system checks...",
        "",
        "System check identified no issues (0 silenced).",
    ]
    assert "Run 'python manage.py migrate' to apply them." in lines  # type: ignore[operator]
    settings = django_site / "mysite" / "settings.py"
    edit(settings, "DEBUG = True", "DEBUG = False")
    assert ask(django_site, extra)["check"] == [
        "CheckFailedError",
        "You must set settings.ALLOWED_HOSTS if DEBUG is False.",
    ]
    edit(settings, "ALLOWED_HOSTS = []", "ALLOWED_HOSTS = ['localhost']")
    edit(settings, "'django.contrib.sessions.middleware.SessionMiddleware',", "")
    answers = ask(django_site, extra)
    name, message = answers["check"]  # type: ignore[misc]
    assert name == "SystemCheckError"
    # Printed first, as runserver prints it, but not part of the page.
    assert answers["before"] == ["Performing system checks...", ""]
    assert message.startswith("System check identified some issues:\n\nERRORS:\n")
    assert (
        "(admin.E410) 'django.contrib.sessions.middleware.SessionMiddleware'" in message
    )
    assert message.endswith("System check identified 1 issue (0 silenced).")


def test_no_static_folders_without_debug_or_staticfiles(django_site: Path) -> None:
    settings = django_site / "mysite" / "settings.py"
    edit(settings, "DEBUG = True", "DEBUG = False")
    assert ask(django_site)["static"] == []
    edit(settings, "DEBUG = False", "DEBUG = True")
    edit(settings, "'django.contrib.staticfiles',", "")
    assert ask(django_site)["static"] == []


def test_templates_changed_resets_the_cached_loader(django_site: Path) -> None:
    extra = """
    from django.template.loader import render_to_string
    from pathlib import Path
    page = Path("templates/home.html")
    first = render_to_string("home.html", {"who": "a"})
    page.write_text("changed {{ who }}")
    cached = render_to_string("home.html", {"who": "a"})
    found.templates_changed([str(page.resolve())])
    fresh = render_to_string("home.html", {"who": "a"})
    answers["renders"] = [first, cached, fresh]
    """
    first, cached, fresh = ask(django_site, extra)["renders"]  # type: ignore[misc]
    assert "version 1" in first and cached == first
    assert fresh == "changed a"
