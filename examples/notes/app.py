"""Notes: a small but complete citus application.

- ``GET /``: an HTML page listing the notes (``templates/index.html``), with a
  form to add one (the form remembers your name in a cookie).
- ``/api/notes``: a JSON API (list, create, read, delete), also served on the
  ``api`` subdomain: ``http://api.localhost:8000/notes``.
- ``/static/style.css``: a static file from ``static/``.

Run it::

    citus --app examples/notes/app.py run --debug     # or: python examples/notes/app.py

then open http://localhost:8000/ and try::

    curl http://localhost:8000/api/notes
    curl -X POST -H 'Content-Type: application/json' -d '{"text": "hi"}' \\
        http://api.localhost:8000/notes

``*.localhost`` names resolve to your own machine in browsers and curl, with no
hosts-file edit. ``SERVER_NAME`` is ``localhost`` without a port, so any port
works (``citus run --port 8001``: ``http://api.localhost:8001/notes``); set
``NOTES_SERVER_NAME`` to serve it under another name.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

from citus import API, abort, redirect, render_template, request, url_for
from citus.exceptions import HTTPException

app = API(__name__)
# Subdomain routes match requests for <subdomain>.SERVER_NAME (on any port,
# since this name has none).
app.config["SERVER_NAME"] = os.environ.get("NOTES_SERVER_NAME", "localhost")
# Refuse request bodies over 64 KiB with 413.
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

_lock = threading.Lock()
_notes: dict[int, dict[str, object]] = {}
_next_id = 1


def add_note(text: str, author: str) -> dict[str, object]:
    """Store a note and return it."""
    global _next_id
    with _lock:
        note = {
            "id": _next_id,
            "text": text,
            "author": author or "anonymous",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        _notes[_next_id] = note
        _next_id += 1
    return note


# -- the HTML page ----------------------------------------------------------------


@app.route("/")
def index():
    # templates/index.html; its values are HTML-escaped (autoescaping).
    with _lock:
        notes = list(_notes.values())
    return render_template("index.html", notes=notes)


@app.route("/notes", methods=["POST"])
def create_from_form():
    text = request.form.get("text", "").strip()
    if not text:
        abort(400, "A note needs some text.")
    author = request.form.get("author", "").strip()
    add_note(text, author)
    response = redirect(url_for("index"), 303)
    response.set_cookie("author", author, max_age=30 * 24 * 3600, samesite="Lax")
    return response


# -- the JSON API, at /api/... and on the api subdomain -----------------------------


@app.route("/", subdomain="api")
def api_index():
    return {"notes": url_for("notes", _external=True)}


@app.route("/notes", methods=["GET", "POST"], subdomain="api", endpoint="notes")
@app.route("/api/notes", methods=["GET", "POST"])
def notes():
    if request.method == "POST":
        data = request.get_json()
        if not isinstance(data, dict) or not str(data.get("text", "")).strip():
            abort(400, 'Send a JSON object with a "text" field.')
        note = add_note(str(data["text"]).strip(), str(data.get("author", "")))
        return note, 201, {"Location": url_for("note", note_id=note["id"])}
    with _lock:
        return list(_notes.values())


@app.route(
    "/notes/<int:note_id>", methods=["GET", "DELETE"], subdomain="api", endpoint="note"
)
@app.route("/api/notes/<int:note_id>", methods=["GET", "DELETE"])
def note(note_id: int):
    with _lock:
        found = _notes.get(note_id)
        if found is None:
            abort(404, f"There is no note {note_id}.")
        if request.method == "DELETE":
            del _notes[note_id]
            return "", 204
    return found


@app.errorhandler(HTTPException)
def json_errors(error):
    """JSON errors for the API (any HTTP error), the usual HTML pages elsewhere."""
    if request.path.startswith("/api/") or request.host.startswith("api."):
        # citus keeps the headers the status needs (a 405's Allow).
        return {"error": error.name, "message": error.description}, error.code
    return error  # its usual page


if __name__ == "__main__":
    app.run(debug=True)
