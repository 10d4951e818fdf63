"""The smallest citus application.

Run it with ``python examples/hello.py`` or
``citus --app examples/hello.py run --debug`` and open http://localhost:8000/.
"""

from citus import API

app = API(__name__)


@app.route("/")
def hello():
    return "Hello, World!"


if __name__ == "__main__":
    app.run(debug=True)
