"""A small real Flask application (routes, JSON, form POST, a Jinja template,
a streaming response), mounted by module name: module = "flask_e2e:app"
with python-path = [".../apps/flask_app"]."""

import os

from flask import Flask, Response, jsonify, render_template, request, stream_with_context, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return "flask index"


@app.get("/json")
def as_json():
    return jsonify(
        args=request.args.to_dict(flat=False),
        path=request.path,
        script_root=request.script_root,
        url_for_form=url_for("form"),
        url_for_page=url_for("page", name="x y"),
        pid=os.getpid(),
    )


@app.post("/form")
def form():
    upload = request.files.get("upload")
    return jsonify(
        form=request.form.to_dict(flat=False),
        upload=None if upload is None else {"filename": upload.filename, "data": upload.read().decode()},
        content_type=request.content_type,
    )


@app.get("/page/<name>")
def page(name):
    return render_template("page.html", name=name, items=["one", "two", "three"])


@app.get("/stream")
def stream():
    n = int(request.args.get("n", "5"))

    def generate():
        for i in range(n):
            yield f"part {i} of {request.args.get('tag', '-')}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/boom")
def boom():
    raise RuntimeError("flask view failed on purpose")
