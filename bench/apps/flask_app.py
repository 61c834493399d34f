"""A small real Flask app rendering a Jinja2 template (bench workload "flask").

Loaded as a WSGI script file (mod_wsgi, oxwsgi: callable ``application``) or
as ``flask_app:app`` (gunicorn, granian, waitress, uWSGI)."""

import os

from flask import Flask, render_template

app = Flask(__name__, template_folder=os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates"))

ITEMS = [{"id": i, "name": "item %d" % i, "price": i * 1.25} for i in range(10)]


@app.route("/")
def index():
    return render_template("page.html", title="Benchmark", items=ITEMS, user="bench")


application = app
