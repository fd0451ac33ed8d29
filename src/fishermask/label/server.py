"""The labeling page and its JSON API (FastAPI on uvicorn, Jinja2 templates, no JS build).

Every request needs the access token, as an ``Authorization: Bearer`` header or (the link
``label serve`` prints, and scripts of earlier versions) a ``token`` query parameter; the
package's static files need none. No answer puts the token into a URL: the page takes it out
of its address bar and sends it in the header, images included (fetched, shown from ``blob:``
URLs). Images are served by id only: the path comes from the
database and is checked (links resolved) to lie inside the image folder, and the file's
content against the hash stored when it was scanned (409 if it changed). A label is
committed to the database before ``POST /api/labels`` answers 200; it takes any image of the
project, not only the batch's, so a label is fixed the same way (``GET /api/labeled`` pages
through the labeled images, likely mistakes first: :mod:`fishermask.label.review`).
``POST /api/revisit`` queues the images skipped or unsure as the batch. ``POST /api/next``
retrains and queries in a worker process, which then estimates the new model's accuracy
(stopped if the next round starts first); the page polls ``GET /api/status`` meanwhile. It is
refused (409, nothing started) while an image is missing or changed since it was scanned
(:meth:`Project.check_intact`, the check of ``label next``). ``POST /api/check`` starts a label
check (:mod:`fishermask.label.check`) in a worker process likewise, refused (409) as ``label
check`` is and while a round runs; ``GET /api/status``'s ``check`` follows it (its progress,
then the result), and ``GET /api/labeled?flagged=true`` lists the labels it flags.

A team: each annotator of ``--annotators`` has a token of their own
(:func:`fishermask.label.team.annotator_token`); every action given with it records the
annotator, and an annotator can undo only their own (403). The owner's token acts as
``owner`` and may undo anything. The owner may always start the next round or a revisit; an
annotator only once every image of the batch has been done by someone (409 otherwise, checked
in the transaction that starts it), and never with ``owner_only_queue`` (403). Each round
records who started it; ``GET /api/status`` says, per token, whether it may now (``you``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import ipaddress
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from fishermask.errors import ConfigError, DataError
from fishermask.label import check as label_check
from fishermask.label import images as imgs
from fishermask.label import imports as label_imports
from fishermask.label import review, serve_lock, team, thumbs
from fishermask.label.project import KIND_NAMES, Project, parse_set_aside
from fishermask.label.store import (
    BatchNotDone,
    CheckRunning,
    ClassRemoved,
    NotYours,
    OthersLabel,
    RoundBusy,
)
from fishermask.signals import Terminated as _Terminated
from fishermask.signals import raise_terminated as _raise_terminated
from fishermask.text import utc_clock

HERE = Path(__file__).parent
MAX_BODY = 4096  # bytes: a label is a few dozen
MEDIA = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
#: Files a browser does not show: the batch view sends a copy of them (PNG or JPEG) instead.
NOT_SHOWN = frozenset({".tif", ".tiff"})


def shortcut_keys(n: int) -> list[str]:
    """Keys of the class buttons: 1-9, 0, then letters not used by other commands."""
    keys = [str(i) for i in range(1, 10)] + ["0"] + list("qwertyiopadfghjklxcvbm")
    return keys[:n] + [""] * max(0, n - len(keys))


#: More classes than this get a box that finds a class by name (``/``): past the ten digit
#: keys come letters nobody remembers, past the 32nd no key at all.
FIND_CLASS_ABOVE = 10


#: Sent with every answer, refusals included. The page loads only its own script, style,
#: images and API (no inline script: its settings are a JSON data block), shows images from
#: ``blob:`` URLs (it fetches them with the token in a header: ``img-src`` allows that and no
#: other origin), may not be framed (clickjacking), and sends no Referer: the URL it is
#: opened with carries the token.
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def with_headers(send: Send, path: str) -> Send:
    """``send`` adding :data:`SECURITY_HEADERS` to the answer's start, and ``Cache-Control:
    no-store`` to all but the static files and images (labels, counts and the page, whose
    settings hold the token, are not kept in the browser's cache)."""
    extra = list(SECURITY_HEADERS)
    if not (path.startswith("/static/") or path.startswith("/api/images/")):
        extra.append((b"cache-control", b"no-store"))

    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            headers = list(message.get("headers", []))
            headers += [(k, v) for k, v in extra if k not in names]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def host_name(host: str) -> str:
    """The name of a ``Host`` header without its port: ``[::1]:80`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


#: ``GET /`` without a valid token (401): ``reopen.js`` opens the page again with the token
#: this tab was opened with (kept in its ``sessionStorage``), once; else it stays saying what
#: to do. It has the labeling page's look (its style sheet: ``/static/`` needs no token) and
#: nothing of the project, not even its name.
NO_TOKEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fishermask label</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><header><h1>fishermask label</h1></header>
<main><div id="refused">
<h2>This page needs its access token</h2>
<p id="why">missing or wrong access token: open the URL that `fishermask label serve`
printed (it ends in ?token=...)</p>
<p class="muted">The page keeps its token out of its address: a bookmark or an address copied
from the page's address bar has no token. Each person opens a URL of their own: an annotator
asks whoever serves the project for theirs (`label serve --annotators NAME` prints one per
name).</p>
</div></main>
<script src="/static/reopen.js"></script></body></html>
"""


#: The API's 401 (a script, or an annotator's tool): where each person's token is, as the
#: page says it (an annotator never sees what `label serve` prints).
NO_TOKEN = (
    "missing or wrong access token: send the token of your URL as an Authorization: Bearer "
    "header (or ?token=...); the owner's is in the URL `fishermask label serve` printed first, "
    "an annotator's in the one it printed for them (an annotator: ask the owner for yours; a "
    "restart makes new tokens unless serve was given --token)"
)


class TokenGuard:
    """ASGI middleware: 401 unless the request carries a token of ``tokens`` (token ->
    annotator, None for the owner); 413 for oversized bodies. The request's ``state`` gets
    ``token`` and ``annotator`` (who is asking). Every answer gets :data:`SECURITY_HEADERS`.

    ``local_only`` (the server listens on a loopback address): 403 for a ``Host`` header
    that names another machine. A browser sends the name it resolved, so a page of another
    site whose name was re-pointed at 127.0.0.1 (DNS rebinding) is refused before its token
    is even looked at."""

    def __init__(
        self, app: ASGIApp, tokens: dict[str, str | None], *, local_only: bool = False
    ) -> None:
        self.app = app
        self.tokens = [(t.encode(), name) for t, name in tokens.items()]
        self.local_only = local_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = with_headers(send, scope.get("path", ""))
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host")
        if self.local_only and host is not None:
            name = host_name(host.decode("latin-1"))
            if not is_loopback(name):
                resp = JSONResponse(
                    {
                        "error": f"Host {name!r} is not this machine: this server listens on "
                        "this machine only; open it as http://127.0.0.1:PORT or "
                        "http://localhost:PORT (a proxy must pass Host: localhost)"
                    },
                    status_code=403,
                )
                await resp(scope, receive, send)
                return
        if scope.get("path") == "/favicon.ico" and scope.get("method") in ("GET", "HEAD"):
            # asked for by the browser itself, without the page's token: a 401 was an error in
            # its console on every load; there is no icon, and "none" reveals nothing
            await Response(status_code=204)(scope, receive, send)
            return
        if scope.get("path", "").startswith("/static/"):
            # the package's own script and style, nothing of the project: served without a
            # token, so the page loads them by plain URLs (a <script src> sends no header)
            await self.app(scope, receive, send)
            return
        given = b""
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        else:
            from urllib.parse import parse_qs

            q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (q.get("token") or [""])[0].encode()
        who: list[str | None] = []
        for token, name in self.tokens:  # each compared in constant time, none skipped
            if secrets.compare_digest(given, token):
                who.append(name)
        if not who and scope.get("path") == "/" and scope.get("method") == "GET":
            # the page itself, reloaded after it took the token out of its address bar (or
            # opened without one): a page that reopens it with this tab's token, once
            resp = HTMLResponse(NO_TOKEN_PAGE, status_code=401)
            await resp(scope, receive, send)
            return
        if not who:
            resp = JSONResponse(
                {"error": NO_TOKEN},
                status_code=401,
            )
            await resp(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            resp = JSONResponse({"error": f"request body over {MAX_BODY} bytes"}, status_code=413)
            await resp(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["token"] = given.decode("latin-1")
        state["annotator"] = who[0]
        await self.app(scope, receive, send)


def _spawn(project: Project, *args: str) -> subprocess.Popen[bytes]:
    """``python -m fishermask.label.worker ARGS`` (:mod:`fishermask.label.worker`), its errors
    appended to the project's ``worker.log``."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "fishermask.label.worker", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(project.dir / "worker.log", "ab"),  # noqa: SIM115
    )


class Worker:
    """Starts and watches the retrain process of ``POST /api/next`` and the label check
    process of ``POST /api/check``."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.proc: subprocess.Popen[bytes] | None = None
        self.check_proc: subprocess.Popen[bytes] | None = None
        # the round this server's worker last ran (kept after it exits, for _cut_short)
        self.round_id: int | None = None
        self.check_id: int | None = None  # the check it last started (as round_id)
        self.lock = threading.Lock()

    def poll(self) -> None:
        with self.lock:  # not while start() has a round (a check) whose pid is not recorded
            if self.proc is not None and self.proc.poll() is not None:
                self.proc = None
            if self.check_proc is not None and self.check_proc.poll() is not None:
                self.check_proc = None
            self.project.recover()

    def start_check(self, folds: int, started_by: str = team.OWNER) -> int:
        """Start a label check recorded as ``started_by``'s (:meth:`Store.start_check`, whose
        :class:`RoundBusy` and :class:`CheckRunning` pass through, nothing started) in a worker
        process. Recorded under this server's pid until the worker's is: another process that
        looks in between (a round asked for, ``label check``) sees a live check."""
        with self.lock:
            store = self.project.store
            check_id, _, _ = store.start_check(folds, os.getpid(), started_by=started_by)
            try:
                self.check_proc = _spawn(
                    self.project, "check", str(self.project.dir), str(check_id)
                )
            except OSError as exc:
                store.finish_check(check_id, status="failed", message=str(exc))
                raise
            store.set_check_pid(check_id, self.check_proc.pid)  # handed over to the worker
            self.check_id = check_id
            return check_id

    def start(self, started_by: str = team.OWNER, *, require_batch_done: bool = False) -> int:
        """Start a round recorded as ``started_by``'s (:meth:`Store.start_round`, whose
        :class:`RoundBusy` and :class:`BatchNotDone` pass through, nothing started)."""
        with self.lock:
            store = self.project.store
            alive = self.proc is not None and self.proc.poll() is None
            # a running label check refuses the round (409): ask before stopping anything
            store.refuse_while_checking()
            if alive and store.running_round() is None:
                # no round runs, so the previous worker is only estimating the accuracy of
                # a finished round: stop it so the new round has the CPU (that estimate is
                # then recorded as not estimated)
                assert self.proc is not None
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                self.proc = None
            # the round is this server's until the worker has a pid: another process
            # (`label status`, `label next`) that looks in between sees a live round, not one
            # without a process to mark interrupted
            round_id = store.start_round(
                self.project.settings["strategy"],
                os.getpid(),
                started_by=started_by,
                require_batch_done=require_batch_done,
            )
            self.round_id = round_id
            try:
                self.proc = _spawn(self.project, str(self.project.dir), str(round_id))
            except OSError as exc:
                store.finish_round(round_id, status="failed", message=str(exc))
                raise
            store.set_round_pid(round_id, self.proc.pid)  # handed over to the worker
            return round_id

    def stop(self) -> None:
        """Stop the worker processes (the server stops): a round is restarted by the next
        ``label serve``; a check ends interrupted, nothing of it kept."""
        with self.lock:
            for proc in (self.proc, self.check_proc):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
            if self.check_proc is not None:
                try:  # it closes its row itself (interrupted) unless stopped before it could
                    self.check_proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.check_proc.kill()
                    self.check_proc.wait()
                self.check_proc = None
                self.project.store.recover_checks()  # so: nothing left 'running'


async def read_body(request: Request) -> bytes | None:
    """The request body, or None once it grows past ``MAX_BODY`` (a streamed body has no
    Content-Length for :class:`TokenGuard` to check, so the bytes are counted here)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return body


def load_json(body: bytes) -> Any:
    """``json.loads``, raising ValueError for every body that is not JSON: malformed, not
    UTF-8, or nested too deeply (``[[[...]]]`` within :data:`MAX_BODY` bytes makes the parser
    recurse past Python's limit: a RecursionError, which was a 500)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def page_config(
    token: str,
    classes: list[str],
    keys: list[str],
    annotator: str = team.OWNER,
    *,
    team_served: bool = False,
    owner_only_queue: bool = False,
) -> str:
    """The page's settings as JSON that is safe inside its ``<script type="application/json">``
    data block (read by ``app.js``; the Content-Security-Policy runs no inline script): ``<``,
    ``>`` and ``&`` are escaped, so no class name can end the element. ``team``: whether the
    server has annotators (the page then says who started each round); ``owner_only_queue``:
    only the owner starts rounds (an annotator's page then says to ask the owner)."""
    text = json.dumps(
        {
            "token": token,
            "classes": classes,
            "keys": keys,
            "annotator": annotator,
            "team": team_served,
            "owner_only_queue": owner_only_queue,
        }
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _no_image(project: Project, image_id: int) -> JSONResponse:
    """404 for an id that names no image; for one forgotten since (a tab still showing it),
    which image it was and what to do."""
    gone = project.store.forgotten_image(image_id)
    if gone is None:
        return _error(404, f"no image with id {image_id}")
    return _error(
        404,
        f"image {gone} was removed from the project (`label scan --forget-missing`); reload "
        "the page for the current batch",
    )


def folder_gone(project: Project, annotator: str | None = None) -> str | None:
    """The one line when the image folder itself is gone or empty (moved, renamed, not
    mounted; an empty mount point) while the project has images, else None: each image's
    404 said "missing ...: skip it (s)", and skipping every image of a folder not plugged in
    set the batch aside for good. ``annotator``: their line, without the owner's path."""
    root = project.root
    try:
        with os.scandir(root) as entries:
            if any(True for _ in entries) or project.store.num_images() == 0:
                return None
    except OSError:  # not there (or not a folder any more)
        pass
    if annotator is not None:
        return (
            "the image folder is missing or empty on the server (moved, renamed or not "
            "mounted?), so no image can be shown: tell the owner; do not skip the images"
        )
    return (
        f"the image folder {root} is missing or empty (moved, renamed or not mounted?), so no "
        "image of the project can be shown: mount or restore it at that path, then reload "
        "the page; or, if it now lies elsewhere, stop the server and point the project at it "
        f"with `fishermask label config {project.dir} --images NEW`, then serve again; do not "
        "skip its images"
    )


def create_app(
    project_dir: str | os.PathLike[str],
    token: str,
    annotators: Sequence[str] = (),
    *,
    owner_only_queue: bool = False,
    local_only: bool = False,
    preview_cache_bytes: int = thumbs.MAX_BYTES,
) -> FastAPI:
    """The ASGI app for one project; every route requires ``token`` (the owner's) or the token
    of one of ``annotators`` (:func:`team.annotator_token`). ``owner_only_queue``: only the
    owner may start the next round or a revisit (else an annotator may once the batch is
    done). ``local_only``: refuse a ``Host`` header naming another machine (see
    :class:`TokenGuard`; set by :func:`run_server` when it listens on a loopback address).
    ``preview_cache_bytes``: the most the thumbnails and batch views cached under the project
    take on disk (:class:`thumbs.Cache`; the entries of images no longer in the project are
    removed here)."""
    tokens: dict[str, str | None] = {team.annotator_token(token, a): a for a in annotators}
    tokens[token] = None
    project = Project(project_dir)
    project.recover()
    worker = Worker(project)
    label_probs = review.LabelProbabilities()  # the model's, for the "Labeled" view
    previews = thumbs.Cache(project.dir, preview_cache_bytes)
    previews.prune(keep={r.sha256 for r in project.store.images()})
    # The classes are read again by every request that uses them: `label config --add-class /
    # --rename-class` may change them while the server runs. A class keeps its id and a name
    # is never given to another class, so a page still showing the old names labels the class
    # it means, or is refused (a renamed name) with the fix: reload the page. A class removed
    # (`--remove-class`) is left out of every list here (keys, buttons, filters) and refused.

    def classes() -> list[str]:
        """The current classes (removed ones left out), read again."""
        project.reload_classes()
        return project.current_classes

    root_real = Path(os.path.realpath(project.root))
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app = FastAPI(title="fishermask label", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.project = project
    app.state.worker = worker
    app.state.previews = previews
    app.state.tokens = {a: team.annotator_token(token, a) for a in annotators}

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the API's own {"error": ...} shape, not FastAPI's {"detail": [...]}
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("path", "query", "body"))
            parts.append(
                f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid")
            )
        msg = "; ".join(parts) or "invalid request"
        return _error(
            422,
            f"bad request: {msg} (image ids are whole numbers, e.g. /api/images/1)"
            if request.url.path.startswith("/api/images/")
            else f"bad request: {msg}",
        )

    @app.exception_handler(sqlite3.Error)
    async def database_failed(request: Request, exc: sqlite3.Error) -> JSONResponse:
        # a full disk or a read-only project folder: the write was rolled back (Store's
        # transaction), so say so in one line, on the page and the server's terminal, rather
        # than an "Internal Server Error" and a traceback
        msg = (
            f"the project database failed ({exc}); nothing was saved: if the disk is full or "
            f"{project.dir} is read-only, free space or make it writable, then try again"
        )
        print(f"label serve: {request.method} {request.url.path}: {msg}", file=sys.stderr)
        return _error(503, msg)

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> Any:
        names = classes()
        keys = shortcut_keys(len(names))
        mine = request.state.token  # the page acts with the token it was opened with
        who = team.name_of(request.state.annotator)
        return templates.TemplateResponse(
            request,
            "index.html",
            {
                "project": project.dir.name,
                "annotator": who,
                "classes": list(zip(names, keys, strict=True)),
                "find_class": len(names) > FIND_CLASS_ABOVE,
                "team": bool(annotators),
                "config": page_config(
                    mine,
                    names,
                    keys,
                    who,
                    team_served=bool(annotators),
                    owner_only_queue=owner_only_queue,
                ),
            },
        )

    @app.get("/api/batch")
    def batch(request: Request) -> Any:
        owner = request.state.annotator is None
        with project.store.snapshot():  # the items and the round id of one batch
            items = project.batch()
            rounds = [r for r in project.store.rounds() if r["status"] == "done"]
            # the owner's page: which of them annotators disagree on, and who said what (as
            # the Labeled view's; the list of disagreements is the owner's)
            disputes = project.store.disputes(it["image_id"] for it in items) if owner else {}
        names = project.class_names() if disputes else project.classes  # 'red (removed)'
        for it in items:  # no token in a URL: the page sends it in a header
            it["url"] = f"/api/images/{it['image_id']}"
            it["view"] = f"/api/images/{it['image_id']}?size=view"  # what the page shows
            it["actual"] = f"/api/images/{it['image_id']}?size=actual"  # its "actual size"
            if owner:
                d = disputes.get(it["image_id"])
                it["disagreement"] = (
                    None
                    if d is None
                    else {
                        "status": d[0],
                        "labels": {
                            team.name_of(w): names[c]
                            for w, c in sorted(d[1].items(), key=lambda t: team.name_of(t[0]))
                        },
                    }
                )
        return {
            "round_id": rounds[-1]["id"] if rounds else None,
            "mode": rounds[-1]["mode"] if rounds else "",
            "started_by": rounds[-1]["started_by"] if rounds else None,
            "classes": project.current_classes,  # read by project.batch()
            "items": items,
        }

    @app.get("/api/labeled")
    def labeled(
        request: Request,
        page: str = "1",
        per_page: str = str(review.PER_PAGE),
        label: str | None = None,
        by: str | None = None,
        sort: str = "mistakes",
        flagged: bool = False,
        disagreements: str | None = None,
    ) -> Any:
        """A page of the labeled images (the page's "Labeled" view, :func:`review.labeled_page`;
        ``flagged=true``: only those the latest label check flags; ``disagreements=open``
        (or ``all``, decided ones too): only the images whose annotators' labels differ, the
        owner's token only, whose items also say who gave which label): 400 with one line for
        a bad parameter. A fix is an ordinary ``POST /api/labels``."""
        if disagreements not in (None, "open", "all"):
            return _error(400, f"disagreements={disagreements!r}: use open or all.")
        if disagreements is not None and request.state.annotator is not None:
            return _error(403, team.OWNER_ONLY_DISAGREEMENTS)
        counts = project.store.label_counts()
        names = set(annotators) | set(counts["annotators"])
        try:
            n, size = review.check_query(
                classes(),
                label=label,
                by=by,
                sort=sort,
                page=page,
                per_page=per_page,
                annotators=sorted(names),
            )
        except ConfigError as exc:
            hint = (
                project.renamed_hint(label) or project.removed_hint(label)
                if label is not None and label not in classes()
                else ""
            )  # a page loaded before `label config --rename-class / --remove-class`
            return _error(400, str(exc).removesuffix(".") + hint + ".")
        out = review.labeled_page(
            project,
            label_probs,
            label=label,
            by=by,
            sort=sort,
            page=n,
            per_page=size,
            flagged=flagged,
            disagreements=disagreements,
            # who gave which label, for the owner to decide (read only where it can differ)
            team_view=request.state.annotator is None
            and (bool(annotators) or bool(counts["disagreements"]) or bool(counts["decided"])),
        )
        for it in out["items"]:
            it["url"] = f"/api/images/{it['image_id']}"
            it["thumb"] = f"/api/images/{it['image_id']}?size=thumb"  # what the grid shows
        out["annotators"] = sorted(names | set(out["annotators"]) | {team.OWNER})
        return out

    @app.get("/api/history/{image_id}")
    def history(request: Request, image_id: int) -> Any:
        """Every action on one image but the undo rows, oldest first, with its ``label_id``
        (:meth:`Project.label_history`): the owner's token every annotator's, an annotator's
        their own (``hidden``: how many of the others' were left out)."""
        row = project.store.image(image_id)
        if row is None:
            return _no_image(project, image_id)
        items = project.label_history(image_id)
        who = request.state.annotator
        mine = items if who is None else [it for it in items if it["by"] == who]
        return {
            "image_id": image_id,
            "path": row.path,
            "hidden": len(items) - len(mine),
            "items": mine,
        }

    @app.get("/api/status")
    def status(request: Request) -> Any:
        worker.poll()
        st = project.status()
        who = request.state.annotator
        why = team.queue_refusal(who, st["batch_left"], owner_only=owner_only_queue)
        # what the asker's page may do: start the next round or a revisit (a running round
        # aside, which refuses everyone), and why not
        st["you"] = {"name": team.name_of(who), "can_queue": why is None, "why": why}
        # and whether it may start a label check (POST /api/check), and why not
        why_check = team.check_refusal(who, owner_only=owner_only_queue)
        st["you"] |= {"can_check": why_check is None, "why_check": why_check}
        st["check"] = check_state()
        st["new_files"] = n = new_files()
        # an annotator cannot scan (and the project's path is the owner's business)
        st["new_files_hint"] = project.new_files_hint(n, "owner" if who is None else "annotator")
        return st

    summaries: dict[tuple[Any, ...], dict[str, Any] | None] = {}  # the latest check's result

    def check_state() -> dict[str, Any] | None:
        """The newest label check for the page (``GET /api/status``'s ``check``; None before
        any): ``{"id", "status"`` (running, done, failed, interrupted), ``"folds", "phase",
        "done", "total", "started_by", "when"`` (its start, UTC), ``"message"`` (why it failed),
        ``"result"``: the latest finished check's ``{"id", "when", "folds", "flagged",
        "current", "scored", "agreement", "line", "weak"}`` (``line``: 'N of M labels flagged
        as possibly wrong (x %)'; ``weak``: the warning that its models are too weak for the
        flags, or None), or None``}``. The result is computed again only when a check or a
        label has changed since (the page asks every 1.5 s)."""
        row = project.store.check_row()
        if row is None:
            return None
        done = project.store.latest_check()
        key = (
            done and done["id"],
            project.store.last_label_id(),
            tuple(sorted(project.store.removed_classes())),
        )
        # read once: a poll in another thread may clear the dict for its own key meanwhile
        summary = summaries.get(key, False)
        if summary is False:
            check = label_check.latest_check(project) if done is not None else None
            summary = None
            if check is not None:
                flagged, current = label_check.current_flagged(project, check)
                summary = {
                    "id": check.info["id"],
                    "when": check.when,
                    "folds": check.info["folds"],
                    "scored": len(check.probs),
                    "current": current,
                    "flagged": flagged,
                    "agreement": round(check.agreement, 4),
                    "line": label_check.flagged_line(flagged, current),
                    "weak": label_check.weak_line(check.agreement),
                }
            summaries.clear()
            summaries[key] = summary
        return {
            "id": row["id"],
            "status": row["status"],
            "folds": row["folds"],
            "phase": row["phase"],
            "done": row["done"],
            "total": row["total"],
            "started_by": row["started_by"],
            "when": utc_clock(row["started"]),
            "message": row["message"],
            "result": summary,
        }

    seen_files: list[float | int] = [float("-inf"), 0]  # when counted, how many

    def new_files() -> int:
        """The image files of the folder not in the project (:meth:`Project.new_files`),
        counted at most every 10 s: the page polls every 1.5 s."""
        now = time.monotonic()
        if now - seen_files[0] >= 10:
            seen_files[:] = [now, project.new_files()]
        return int(seen_files[1])

    def refuse_queue(annotator: str | None, action: str) -> JSONResponse | None:
        """The answer refusing an annotator's new batch (403 under ``--owner-only-queue``,
        409 while the batch has images to do), or None. Asked early for a clear answer; the
        batch rule is checked again in the transaction that replaces the batch."""
        if annotator is None:
            return None
        if owner_only_queue:
            return _error(403, team.OWNER_ONLY)
        left = project.store.batch_left()
        return _error(409, team.batch_not_done(left, action)) if left else None

    @app.post("/api/labels")
    async def post_label(request: Request) -> Any:
        body = await read_body(request)
        if body is None:
            return _error(413, f"request body over {MAX_BODY} bytes")
        try:
            data = load_json(body)
        except ValueError:  # malformed, not UTF-8, nested too deeply
            return _error(400, 'body must be JSON like {"image_id": 3, "label": "cat"}')
        if not isinstance(data, dict):
            return _error(400, 'body must be a JSON object like {"image_id": 3, "label": "cat"}')
        extra = set(data) - {"image_id", "label", "kind", "client", "decide"}
        if extra:
            return _error(
                400,
                f"unknown field(s) {', '.join(sorted(extra))}; "
                "allowed: image_id, label, kind, client, decide",
            )
        image_id = data.get("image_id")
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            return _error(400, "`image_id` must be an integer image id (from GET /api/batch)")
        kind = data.get("kind", "label")
        if kind not in ("label", "skip", "unsure"):
            return _error(400, "`kind` must be label, skip or unsure")
        label = data.get("label")
        client = data.get("client")
        if client is not None and (not isinstance(client, str) or len(client) > 64):
            return _error(400, "`client` must be a string of at most 64 characters")
        class_id = None
        if kind == "label":
            names = classes()
            if label is None:
                return _error(
                    400,
                    f"`label` is missing: give one of the classes ({', '.join(names)}), "
                    'or "kind": "skip" or "unsure"',
                )
            if (
                isinstance(label, str)
                and label not in names
                and (hint := project.renamed_hint(label) or project.removed_hint(label))
            ):
                # a page loaded before `label config --rename-class / --remove-class`: nothing
                # saved, and never another class by that name (a name is not reused)
                return _error(
                    409,
                    f"label {label!r} is not a class any more{hint}; nothing was saved: reload "
                    "the page for the current classes",
                )
            if not isinstance(label, str) or label not in names:
                return _error(
                    400,
                    f"label {label!r} is not one of the project's classes: {', '.join(names)}",
                )
            class_id = project.classes.index(label)  # its id (removed classes keep theirs)
        elif label is not None:
            return _error(400, f"a {kind} carries no label")
        decide = data.get("decide", False)
        if not isinstance(decide, bool):
            return _error(400, "`decide` must be true or false")
        if decide and kind != "label":
            return _error(400, f"a {kind} decides nothing: a decision is a label")
        if decide and request.state.annotator is not None:
            return _error(403, team.OWNER_ONLY_DECIDE)
        image = project.store.image(image_id)  # its path names it in the 'already' note
        if image is None:
            return _no_image(project, image_id)
        who = request.state.annotator
        same: list[int] = []
        try:
            written = await run_in_threadpool(
                functools.partial(
                    project.store.add_labels,
                    [(image_id, kind, class_id)],
                    source="decision" if decide else "human",
                    client=client,
                    annotator=who,
                    keep_others=True,  # a skip or unsure never replaces another's label
                    # the same label by the same person again: nothing to write
                    unless_same=True,
                    same=same,  # the row it repeats, read in the same transaction
                )
            )
        except OthersLabel as exc:
            return _error(409, str(exc))
        except ConfigError:  # forgotten (`label scan --forget-missing`) since the check above
            return _no_image(project, image_id)
        out = {
            "image_id": image_id,
            "kind": kind,
            "label": label,
            "by": team.name_of(who),
            "decided": decide,
            "already": not written,
        }
        if decide:
            # a decision on an image whose annotators do not disagree is recorded all the
            # same (the image's label from now on), and the answer says so
            out["disagreement"] = project.store.disagreement(image_id)
            if out["disagreement"] is None:
                out["note"] = (
                    "this image had no disagreement between annotators: recorded as the "
                    "owner's decision anyway (the image's label from now on); a plain label "
                    "(without decide) fixes a label"
                )
        if written:
            return {"label_id": written[0]} | out
        # the image's current action is that label of this person's already (its id, which an
        # undo takes, as the write's transaction read it: a label landing since is not it): a
        # success that wrote no history row
        what = "decided" if decide else "labeled"
        return {
            "label_id": same[0] if same else None,
            **out,
            "note": f"{image.path} is {what} {label} by {team.name_of(who)} already; "
            "nothing was written",
        }

    @app.post("/api/undo")
    async def undo(request: Request) -> Any:
        body = await read_body(request)
        if body is None:
            return _error(413, f"request body over {MAX_BODY} bytes")
        try:
            data = load_json(body)
            label_id = data["label_id"]
            if isinstance(label_id, bool) or not isinstance(label_id, int):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(400, 'body must be JSON like {"label_id": 12}')
        try:
            undo_id = await run_in_threadpool(
                functools.partial(project.store.undo, label_id, annotator=request.state.annotator)
            )
        except NotYours as exc:
            return _error(403, str(exc))
        except ClassRemoved as exc:
            return _error(409, str(exc))
        except ConfigError as exc:
            return _error(404, str(exc))
        return {"undo_id": undo_id, "undone": label_id}

    def next_busy(round_id: int) -> JSONResponse:
        """409 for "next batch" during a round: who started it (a team's pages are many) and
        what to do, which the bare 'a retrain is already running (round 7)' did not say."""
        r = project.store.round(round_id) or {}
        who = f", started by {r['started_by']}" if r.get("started_by") else ""
        return _error(
            409,
            f"a retrain is already running (round {round_id}{who}); its batch comes when it "
            "is done: keep labeling meanwhile",
        )

    @app.post("/api/next", status_code=202)
    def next_batch(request: Request) -> Any:
        who = request.state.annotator
        if (refused := refuse_queue(who, "start the next round")) is not None:
            return refused
        worker.poll()
        if (running := project.store.running_round()) is not None:
            return next_busy(running["id"])
        try:
            # refused here, nothing started, rather than a round that fails in the worker
            project.check_intact()
        except DataError as exc:
            return _error(409, str(exc))
        try:  # likewise a --import file that is gone (the worker imports it)
            label_imports.check_present(project.store.get_meta("imports"), str(project.dir))
        except ConfigError as exc:
            return _error(409, str(exc))
        try:
            round_id = worker.start(team.name_of(who), require_batch_done=who is not None)
        except RoundBusy as busy:
            return next_busy(busy.args[0])
        except CheckRunning as exc:  # `label check` trains its models meanwhile
            return _error(409, str(exc))
        except BatchNotDone as left:  # an image undone since the check above
            return _error(409, team.batch_not_done(left.args[0], "start the next round"))
        return {"round_id": round_id}

    @app.post("/api/check", status_code=202)
    async def start_check(request: Request) -> Any:
        """Start a label check (:mod:`fishermask.label.check`, as ``label check`` does) in a
        worker process; the page follows it in ``GET /api/status``'s ``check``. Body: empty
        (:data:`~fishermask.label.check.FOLDS` folds) or ``{"folds": K}``. 400 for a bad body,
        403 for an annotator under ``--owner-only-queue``, 409 (one line, nothing started)
        while a round or another check runs, with too few labels, or while an image is
        missing or changed since it was scanned."""
        body = await read_body(request)
        if body is None:
            return _error(413, f"request body over {MAX_BODY} bytes")
        example = f'{{"folds": {label_check.FOLDS}}}'
        try:
            data = load_json(body) if body.strip() else {}
        except ValueError:
            return _error(400, f"body must be JSON like {example} (or empty: the default)")
        if not isinstance(data, dict) or set(data) - {"folds"}:
            return _error(400, f"body must be a JSON object like {example}; allowed: folds")
        folds = data.get("folds", label_check.FOLDS)
        if (
            isinstance(folds, bool)
            or not isinstance(folds, int)
            or not 2 <= folds <= label_check.MAX_FOLDS
        ):
            return _error(
                400,
                f"`folds` must be a whole number from 2 to {label_check.MAX_FOLDS} (default "
                f"{label_check.FOLDS})",
            )
        who = request.state.annotator
        if (why := team.check_refusal(who, owner_only=owner_only_queue)) is not None:
            return _error(403, why)
        return await run_in_threadpool(begin_check, folds, "folds" in data, who)

    def begin_check(folds: int, given: bool, who: str | None) -> Any:
        """``POST /api/check`` past its body: refused (409) as ``label check`` is, each in
        one line, before anything is recorded; else the check's id (202)."""

        def retraining(round_id: int) -> JSONResponse:
            return _error(
                409,
                f"a retrain is running (round {round_id}); start the label check when it is done",
            )

        worker.poll()  # a round or check whose process died is not running
        if (running := project.store.running_round()) is not None:
            return retraining(running["id"])
        try:
            project.store.refuse_while_checking()
            label_check.check_enough(
                project.store.current_labels(),
                project.store.copies(),
                folds,
                project.reload_classes(),
                "folds" if given else None,
            )
            project.check_intact()  # refused here, as POST /api/next does, not in the worker
            label_imports.check_present(project.store.get_meta("imports"), str(project.dir))
        except (ConfigError, DataError) as exc:  # CheckRunning is a ConfigError
            return _error(409, str(exc))
        try:
            check_id = worker.start_check(folds, team.name_of(who))
        except RoundBusy as busy:
            return retraining(busy.args[0])
        except CheckRunning as exc:
            return _error(409, str(exc))
        return JSONResponse({"check_id": check_id, "folds": folds}, status_code=202)

    @app.post("/api/revisit")
    async def revisit(request: Request) -> Any:
        body = await read_body(request)
        if body is None:
            return _error(413, f"request body over {MAX_BODY} bytes")
        example = '{"kinds": ["unsure", "skipped"]}'
        try:
            data = load_json(body) if body.strip() else {}
        except ValueError:
            return _error(400, f"body must be JSON like {example} (or empty: both)")
        if not isinstance(data, dict) or set(data) - {"kinds", "n"}:
            return _error(400, f"body must be a JSON object like {example}; allowed: kinds, n")
        names = data.get("kinds", ["unsure", "skipped"])
        n = data.get("n")
        if not isinstance(names, list) or not names or not all(isinstance(k, str) for k in names):
            return _error(400, f"`kinds` must be a non-empty list like {example}")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            return _error(400, "`n` must be an integer >= 1 (at most this many, oldest first)")
        try:
            kinds = parse_set_aside(names, "kind")
        except ConfigError as exc:
            return _error(400, str(exc))
        who = request.state.annotator
        if (refused := refuse_queue(who, "revisit")) is not None:
            return refused
        worker.poll()  # a round whose process died is not running
        try:
            round_id, items = await run_in_threadpool(
                functools.partial(
                    project.revisit,
                    kinds,
                    n,
                    started_by=team.name_of(who),
                    require_batch_done=who is not None,
                )
            )
        except BatchNotDone as left:  # an image undone since the check above
            return _error(409, team.batch_not_done(left.args[0], "revisit"))
        except RoundBusy as busy:
            return _error(
                409,
                f"a retrain is running (round {busy.args[0]}); its batch would replace this "
                "one: revisit when it is done",
            )
        except (ConfigError, DataError) as exc:  # the model's --import file is gone, or its
            # checkpoint cannot be read (its guesses): one line, nothing queued
            return _error(409, str(exc))
        return {
            "round_id": round_id,
            "queued": len(items),
            # both counts always (0 for a kind not asked for): the shape the README gives
            **{name: sum(it["kind"] == k for it in items) for k, name in KIND_NAMES.items()},
        }

    @app.get("/api/export.csv")
    def export_csv(request: Request, annotators: bool = False, set_aside: bool = False) -> Any:
        if annotators and request.state.annotator is not None:
            # who gave each image's label, across the team, in one file: the owner's
            return _error(403, team.OWNER_ONLY_EXPORT)
        try:
            text = project.export_csv_text(annotators=annotators, set_aside=set_aside)
        except DataError as exc:  # a labeled image changed since it was scanned
            return _error(409, str(exc))
        return PlainTextResponse(
            text,
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="labels.csv"'},
        )

    @app.get("/api/images/{image_id}")
    def image(request: Request, image_id: int, size: str = "full") -> Any:
        """The image file, or with ``size=thumb`` its preview and with ``size=view`` the
        batch view's image (the file itself when it fits in ``thumbs.VIEW``, else a smaller
        copy; :mod:`fishermask.label.thumbs`, cached under the project by content hash), and
        with ``size=actual`` the page's "actual size" (the file itself, or a PNG of its own
        size when a browser does not draw it: a TIFF); each only while the file is what was
        scanned (409 otherwise)."""
        if size not in ("full", "thumb", "view", "actual"):
            return _error(
                400,
                f"size={size!r}: use full (the file), view (the page's), actual (the file at "
                "its own size, as a browser draws it) or thumb (a preview).",
            )
        row = project.store.image(image_id)
        if row is None:
            return _no_image(project, image_id)
        path = project.root / row.path
        if not os.path.lexists(path):
            if (gone := folder_gone(project, request.state.annotator)) is not None:
                return _error(404, gone)
            # an annotator has no shell on the server (nor any use for the project's path)
            fix = (
                f"run `fishermask label scan {project.dir}`, which follows an image moved "
                "inside the folder and says how to forget one deleted"
                if request.state.annotator is None
                else "tell the owner, whose `fishermask label scan` follows an image moved "
                "inside the folder"
            )
            return _error(
                404,
                f"{row.path} is missing from the image folder (moved or deleted since it was "
                f"scanned): skip it (s) and {fix}",
            )
        if not imgs.inside(root_real, path):
            return _error(403, f"image {image_id} is no longer a file inside the image folder")
        try:
            data = Path(os.path.realpath(path)).read_bytes()
        except OSError:
            return _error(403, f"image {image_id} is no longer a file inside the image folder")
        if hashlib.sha256(data).hexdigest() != row.sha256:
            # showing the new content under the old label (or labeling it) would be silent
            return _error(
                409,
                f"image {row.path} changed since it was scanned; run `fishermask label scan` "
                "on the project: it says how to restore or accept it",
            )
        if size == "actual" and path.suffix.lower() in NOT_SHOWN:
            try:
                return Response(thumbs.full_size_png(data), media_type="image/png")
            except Exception as exc:  # noqa: BLE001 - said as the batch view's 415 says it
                return _error(
                    415,
                    f"{row.path} is a TIFF that cannot be converted for the browser "
                    f"({type(exc).__name__}: {exc}), and browsers do not show TIFF: open "
                    "the file itself to see it at its own size",
                )
        side = {"thumb": thumbs.SIDE, "view": thumbs.VIEW}.get(size)
        if size == "view" and max(row.width, row.height) <= thumbs.VIEW:
            # the file fits in the view: sent as it is, unless a browser cannot show it
            side = thumbs.VIEW if path.suffix.lower() in NOT_SHOWN else None
        if side is not None:
            try:
                body, media = previews.get(data, row.sha256, side)
            except Exception as exc:  # noqa: BLE001 - a file Pillow cannot shrink: the file
                if path.suffix.lower() in NOT_SHOWN:
                    # ... which a browser does not show either: sent as it was, the page
                    # stayed blank without a word; this line is what the page shows instead
                    return _error(
                        415,
                        f"{row.path} is a TIFF that cannot be converted for the browser "
                        f"({type(exc).__name__}: {exc}), and browsers do not show TIFF: open "
                        "the file itself to label it, or save it as PNG and `label scan`",
                    )
            else:
                return Response(body, media_type=media)
        return Response(data, media_type=MEDIA.get(path.suffix.lower(), "image/*"))

    @app.get("/api/predictions")
    def predictions(images: str = "all", min_prob: float = 0.0, top: int = 1) -> Any:
        """The latest model's predictions and held-out figure (``label predict --format
        json``): 400 for a bad parameter, 409 without a model or while an image is missing
        or changed since it was scanned."""
        from fishermask.label.predict import check_options, predict_project

        try:
            check_options(images, min_prob, top, len(classes()), api=True)
        except ConfigError as exc:
            return _error(400, str(exc))
        try:
            res = predict_project(project, which=images, min_prob=min_prob, top=top)
        except (ConfigError, DataError) as exc:
            return _error(409, str(exc))
        return res.as_json()

    app.add_middleware(TokenGuard, tokens=tokens, local_only=local_only)
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_advice(exc: OSError) -> str:
    """Why a bind failed and what to change: the port only when the port is the problem."""
    if isinstance(exc, socket.gaierror):
        return (
            f"{exc.strerror} (not a host name this machine can resolve); use --host 127.0.0.1 "
            "(this machine only) or one of this machine's addresses."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{exc.strerror} (not an address of this machine); use --host 127.0.0.1 (this "
            "machine only), 0.0.0.0 (every interface) or one of this machine's addresses."
        )
    if exc.errno == errno.EACCES:
        return f"{exc.strerror} (ports below 1024 need privileges); use a higher --port or 0."
    return f"{exc.strerror}; try --port 0 (any free port)."


def _cut_short(worker: Worker, project: Project) -> str:
    """What stopping the server now interrupts (its worker's round, or the accuracy estimate
    after it), as a clause of the 'stopped' line: Ctrl-C in the middle of a round used to end
    the server without a word."""
    try:
        # a Ctrl-C in a terminal reaches the workers too (one process group): one may have
        # recorded its round (check) as interrupted and exited before this runs, which said
        # nothing; so this server's own round and check are looked up by id
        if worker.check_id is not None:
            row = project.store.check_row(worker.check_id)
            if row is not None and (
                # just now (its worker stopped by the same Ctrl-C), not one of earlier
                (row["status"] == "interrupted" and time.time() - (row["finished"] or 0) < 60)
                or (row["status"] == "running" and worker.check_proc is not None)
            ):
                return (
                    f"; label check {row['id']} was stopped (nothing of it is kept: start it "
                    "again from the Labeled view)"
                )

        def interrupted(round_id: int) -> str:
            return (
                f"; round {round_id} (a retrain) was interrupted: the next `fishermask label "
                f"serve {project.dir}` restarts it from the last good model"
            )

        rounds = project.store.rounds()
        mine = worker.round_id
        if mine is not None and rounds and rounds[-1]["id"] == mine:
            if rounds[-1]["status"] in ("running", "interrupted"):
                return interrupted(mine)
        if worker.proc is None or worker.proc.poll() is not None:
            return ""
        running = project.store.running_round()
        if running is not None:
            return interrupted(running["id"])
        estimating = next(
            (r["id"] for r in reversed(rounds) if r["metrics"].get("estimating")), None
        )
        if estimating is not None:
            return (
                f"; the accuracy estimate of round {estimating} was cut short (recorded as not "
                "estimated; the next round, or `fishermask label train`, makes a new one)"
            )
    except Exception:  # noqa: BLE001 - a message at exit must not hide the real exit
        return ""
    return ""


#: How the 'stopped' line names a stop by SIGHUP (the terminal ``label serve`` runs in was
#: closed).
HUNG_UP = " (SIGHUP: its terminal was closed)"


def run_server(
    project_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    annotators: Sequence[str] = (),
    owner_only_queue: bool = False,
    preview_cache_mb: int = thumbs.MAX_BYTES // 2**20,
    say: Callable[[str], None] = print,
) -> None:
    """Bind, print the URL (with its token) on one line, then one line per annotator with
    theirs; serve until interrupted (Ctrl-C: :class:`KeyboardInterrupt` goes on up) or
    terminated (SIGTERM, or SIGHUP: its terminal closed; returns), then say what was saved
    and how to serve it again. Every request under way is answered first (uvicorn's
    graceful shutdown), so every label acknowledged is committed; the database is closed.
    Holds the project's serve lock meanwhile: refused (:class:`serve_lock.AlreadyServed`,
    nothing started) while another server of the project runs."""
    import uvicorn

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be 0 (any free port) to 65535.")
    if token:
        team.check_token(token, team=bool(annotators), exposed=not is_loopback(host), host=host)
    token_given = bool(token)
    token = token or secrets.token_urlsafe(24)
    if owner_only_queue and not annotators:
        raise ConfigError(
            "--owner-only-queue applies to a team (who besides the owner may start rounds); "
            "add --annotators alice,bob, or leave it out."
        )
    if preview_cache_mb < 0:
        raise ConfigError(
            f"--preview-cache-mb {preview_cache_mb}: must be >= 0 (0 keeps no preview on disk: "
            f"each is made again when shown; default {thumbs.MAX_BYTES // 2**20})."
        )
    # before anything is read, written or bound: a second server of the project is refused
    # with nothing started (its bind would otherwise fail first, on the same --port, with
    # advice to pick another port, which starts the second server this refuses)
    with serve_lock.acquire(project_dir) as lock:
        app = create_app(
            project_dir,
            token,
            annotators,
            owner_only_queue=owner_only_queue,
            local_only=is_loopback(host),
            preview_cache_bytes=preview_cache_mb * 2**20,
        )
        project: Project = app.state.project
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {host}:{port}: {bind_advice(exc)}") from None
        if not is_loopback(host):  # once it is known to listen there
            say(
                f"warning: serving on {host}, reachable from other machines; anyone with the URL "
                "(and its token) can label, and the token crosses the network unencrypted (plain "
                "HTTP): use a trusted network, or --host 127.0.0.1 and an SSH tunnel."
            )
        if (shared := app.state.previews.shared) is not None:
            say(f"note: {shared}")
        if (gone := folder_gone(project)) is not None:
            say(f"warning: {gone}")
        elif (found := project.root_note) is not None:
            say(f"note: {found}")
        sock.listen(128)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        lock.record(address=f"http://{shown}:{bound}")  # for a second server's refusal
        if project.needs_restart():
            # refused up front, as POST /api/next is, rather than a round failing in the worker
            try:
                project.check_intact()
            except DataError as exc:
                say(f"the last retrain was interrupted and is not restarted: {exc}")
            else:
                # recorded as the interrupted round's (who asked for it), not as the owner's
                asked = project.store.rounds()[-1]["started_by"] or team.OWNER
                try:
                    app.state.worker.start(asked)
                except CheckRunning as exc:  # `label check` is training: serve without it
                    say(f"the last retrain was interrupted and is not restarted now: {exc}")
                else:
                    say("the last retrain was interrupted; restarting it from the last good model")
        how = ""
        main = threading.current_thread() is threading.main_thread()
        # the handlers before ours, read (not replaced) here and put back in the finally: ours
        # are installed inside the try, so a signal the moment one is installed still gets
        # the 'stopped' line and the clean close (installed before it, such a signal skipped
        # both). None: not installed from Python, nothing to put back.
        before = signal.getsignal(signal.SIGTERM) if main else None
        hup = getattr(signal, "SIGHUP", None)  # none on Windows: no terminal hangs up there
        hup_before = signal.getsignal(hup) if main and hup is not None else None
        server: Any = None
        hung_up: list[int] = []

        def on_hangup(signum: int, frame: Any) -> None:
            """SIGHUP (the terminal closed), which uvicorn leaves alone: its default action
            ended the process at once, without the 'stopped' line and with the requests under
            way cut off. Stopped as SIGTERM is: uvicorn's graceful stop, then the line."""
            hung_up.append(signum)
            if server is None:  # before uvicorn serves: nothing under way
                raise _Terminated
            server.should_exit = True

        try:  # from the first URL on: a Ctrl-C before uvicorn handles signals is said too
            if main:
                # uvicorn takes SIGTERM while it serves and gives it back to this handler
                signal.signal(signal.SIGTERM, _raise_terminated)
                # a SIGHUP ignored (`nohup fishermask label serve ...`) stays ignored
                if hup is not None and hup_before is not signal.SIG_IGN:
                    signal.signal(hup, on_hangup)
            print(f"labeling page: http://{shown}:{bound}/?token={token}", flush=True)
            for name, mine in app.state.tokens.items():
                print(f"labeling page for {name}: http://{shown}:{bound}/?token={mine}", flush=True)
            config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
            server = uvicorn.Server(config)
            asyncio.run(server.serve(sockets=[sock]))
        except _Terminated:
            how = HUNG_UP if hung_up else " (SIGTERM)"
        finally:
            if before is not None:
                signal.signal(signal.SIGTERM, before)
            if hup is not None and hup_before is not None and hup_before is not signal.SIG_IGN:
                signal.signal(hup, hup_before)
            if hung_up:
                how = HUNG_UP
            cut = _cut_short(app.state.worker, project)
            app.state.worker.stop()
            sock.close()
            project.close()  # waits for a write under way: committed, or never acknowledged
            again = f"`fishermask label serve {project.dir}` serves it again" + (
                " (the same URLs, with the same token)"
                if token_given
                else " (new URLs: each start makes a new token unless given --token)"
            )
            # a closed terminal (SIGHUP) may refuse the line: the stop goes on regardless
            with contextlib.suppress(OSError):
                say(f"stopped{how}{cut}; every label given is saved in {project.dir}: {again}.")
