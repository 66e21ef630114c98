"""`previz review`: dailies in the browser, served from the store (Starlette on uvicorn).

A reviewer opens a version, plays the cut, compares every take of a shot side by side, picks
one, approves it or marks the shot as needing work, and leaves notes at frames; each is a
decision record in the store (previz.dailies.decisions) that the next render follows.

Security: the server listens on 127.0.0.1 unless told otherwise. On loopback the reviewer is
this machine's user. On any other address every request needs a reviewer token (`--tokens`
FILE of `name: token` lines, or PREVIZ_REVIEW_TOKENS): the reviewer signs in once with it and
gets an HttpOnly, SameSite=Strict cookie; tokens never travel in URLs. Who made a decision comes
from the token, never from the form. A decision is posted as JSON with a per-server CSRF header
that only the page itself knows, and an Origin, when sent, must be the server's own. Every user
text (notes, prompts, names) reaches the page through Jinja2's autoescaping or as JSON.
"""

from __future__ import annotations

import getpass
import hmac
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from previz.dailies.decisions import (
    Action,
    Decision,
    read_decisions,
    record_decision,
    shot_reviews,
)
from previz.errors import InvalidInput

__all__ = ["ReviewSettings", "review_app", "serve", "load_tokens"]

COOKIE = "previz_review"
CSRF_HEADER = "x-previz-csrf"
TOKENS_ENV = "PREVIZ_REVIEW_TOKENS"


@dataclass(frozen=True)
class ReviewSettings:
    store_uri: str
    host: str = "127.0.0.1"
    port: int = 8300
    tokens: dict[str, str] | None = None  # token -> reviewer; None: loopback, this user
    sequence: tuple[str, str] | None = None  # (project, sequence): only that one is served


def load_tokens(path: str | None) -> dict[str, str] | None:
    """Reviewer tokens from `path` or PREVIZ_REVIEW_TOKENS: `name: token` per line."""
    source = path or os.environ.get(TOKENS_ENV)
    if not source:
        return None
    where = "--tokens" if path else TOKENS_ENV
    try:
        text = Path(source).read_text()
    except OSError as error:
        raise InvalidInput(f"{where} {source}: cannot be read ({error.strerror})") from None
    tokens: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, token = line.partition(":")
        if not name.strip() or len(token.strip()) < 16:
            raise InvalidInput(f"{source}:{number}: write `name: token`, the token at least 16 "
                               "characters (python -c 'import secrets; print(secrets.token_hex())')")
        tokens[token.strip()] = name.strip()
    if not tokens:
        raise InvalidInput(f"{where} {source}: no `name: token` lines")
    return tokens


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def review_app(settings: ReviewSettings):
    """The Starlette application. Raises InvalidInput for a non-loopback host without tokens."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import (
        FileResponse,
        HTMLResponse,
        JSONResponse,
        RedirectResponse,
        Response,
    )
    from starlette.routing import Route

    from previz.store import (
        NotFound,
        StoreError,
        open_store,
        published_versions,
        read_manifest,
    )

    if not _loopback(settings.host) and not settings.tokens:
        raise InvalidInput(f"--host {settings.host}: reviewers on other machines need tokens — "
                           f"give --tokens FILE (or {TOKENS_ENV}) with one `name: token` line "
                           "per reviewer, and put HTTPS in front (cluster/README.md)")
    store = open_store(settings.store_uri)
    csrf = secrets.token_urlsafe(32)
    # Take records, read once: a take is content-addressed, its record never changes (a take not
    # yet published is looked for again next time).
    records: dict[str, dict[str, Any]] = {}
    local_user = getpass.getuser()
    pages = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

    def reviewer(request: Request) -> str | None:
        if settings.tokens is None:
            return local_user
        given = request.cookies.get(COOKIE, "")
        for token, name in settings.tokens.items():
            if hmac.compare_digest(given.encode(), token.encode()):
                return name
        return None

    def page(template: str, **values: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)  # the page's own script runs; nothing injected does
        body = pages.from_string(template).render(nonce=nonce, **values)
        html = pages.from_string(_BASE).render(body=body, csrf=csrf)
        return HTMLResponse(html, headers={**_PAGE_HEADERS, "Content-Security-Policy": (
            "default-src 'self'; media-src 'self' https:; img-src 'self' data:; "
            f"style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; frame-ancestors 'none'; "
            "form-action 'self'")})

    def signed_in(handler):
        async def guarded(request: Request) -> Response:
            if reviewer(request) is None:
                if request.method == "GET" and not request.url.path.startswith("/api/"):
                    return RedirectResponse("/login", status_code=303)
                return JSONResponse({"error": "sign in first"}, status_code=401)
            return await handler(request)
        return guarded

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return page(_LOGIN, failed=False)
        form = await request.form()
        token = str(form.get("token", ""))
        if settings.tokens is None or token not in settings.tokens:
            return page(_LOGIN, failed=True)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https" or
                            request.headers.get("x-forwarded-proto") == "https")
        return response

    async def index(request: Request) -> Response:
        if settings.sequence is not None:  # straight to its latest version
            project, sequence = settings.sequence
            versions = published_versions(store, project, sequence)
            if versions:
                return RedirectResponse(f"/v/{project}/{sequence}/v{versions[-1]:03d}",
                                        status_code=303)
        return page(_INDEX, sequences=_sequences(store, settings.sequence),
                    reviewer=reviewer(request))

    async def version_page(request: Request) -> Response:
        project, sequence, version = (request.path_params[k] for k in
                                      ("project", "sequence", "version"))
        try:
            manifest = read_manifest(store, project, sequence, version)
        except (StoreError, ValueError):  # none, or a name that is no id
            return HTMLResponse("no such version", status_code=404)
        data = _version_data(store, manifest, project, sequence, version, records)
        return page(_VERSION, data=data, reviewer=reviewer(request), project=project,
                    sequence=sequence, version=version)

    async def version_json(request: Request) -> Response:
        project, sequence, version = (request.path_params[k] for k in
                                      ("project", "sequence", "version"))
        try:
            manifest = read_manifest(store, project, sequence, version)
        except (StoreError, ValueError):
            return JSONResponse({"error": "no such version"}, status_code=404)
        return JSONResponse(_version_data(store, manifest, project, sequence, version, records))

    async def media(request: Request) -> Response:
        key = request.path_params["key"]
        if not _MEDIA_KEY.fullmatch(key):
            return Response(status_code=404)
        path = _local_path(store, key)
        if path is not None:
            return FileResponse(path) if path.is_file() else Response(status_code=404)
        try:
            return RedirectResponse(store.link(key), status_code=307)
        except NotFound:
            return Response(status_code=404)

    async def decide(request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), csrf):
            return JSONResponse({"error": "missing or wrong CSRF header"}, status_code=403)
        origin = request.headers.get("origin")
        if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
            return JSONResponse({"error": f"cross-site request from {origin}"}, status_code=403)
        try:
            body = await request.json()
            decision = _decision_from(store, body, reviewer(request))
        except (ValueError, KeyError, TypeError, StoreError) as error:
            return JSONResponse({"error": str(error).splitlines()[0]}, status_code=400)
        record_decision(store, decision)
        return JSONResponse(decision.model_dump(mode="json"), status_code=201)

    return Starlette(routes=[
        Route("/login", login, methods=["GET", "POST"]),
        Route("/", signed_in(index)),
        Route("/v/{project}/{sequence}/{version}", signed_in(version_page)),
        Route("/api/v/{project}/{sequence}/{version}", signed_in(version_json)),
        Route("/media/{key:path}", signed_in(media)),
        Route("/api/decisions", signed_in(decide), methods=["POST"]),
    ])


_PAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# what /media/ serves: take media, and the files of published versions (P/S/vNNN/name)
_MEDIA_KEY = re.compile(r"takes/[0-9a-f]{2}/[0-9a-f]{64}/take\.mp4|"
                        r"[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_-]{1,64}/v\d{3,4}/[A-Za-z0-9_][A-Za-z0-9._-]*")


def _local_path(store, key: str) -> Path | None:
    """A folder store's file for `key` (served with range requests, for seeking); None on S3,
    where the browser is sent to a presigned link instead."""
    root = getattr(store, "root", None)
    if root is None:
        return None
    from previz.store.keys import check_object_key

    return Path(root) / check_object_key(key)


def _sequences(store, only: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Every sequence with published versions (or just `only`, without listing the store),
    newest version first."""
    from previz.store import published_versions

    found = [only] if only else sorted(
        {(key.split("/")[0], key.split("/")[1]) for key in store.list("")
         if key.endswith("/latest.json") and key.count("/") == 2})
    return [{"project": p, "sequence": s,
             "versions": [f"v{n:03d}" for n in reversed(published_versions(store, p, s))]}
            for p, s in found]


def _version_data(store, manifest: dict[str, Any], project: str, sequence: str,
                  version: str, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the page shows of a version: its shots, every take of each, the reviewers'
    standing on each shot and its history across versions."""
    from previz.store import has_take, published_versions, read_take_record
    from previz.store.keys import take_object
    from previz.store.takes import MEDIA_NAME

    cut = manifest["cut"]
    reviews = shot_reviews(read_decisions(store, project, sequence))
    shots = []
    for shot in manifest["shots"]:
        takes = []
        # (a version published before manifests listed every take: the one it shows)
        shown = [{"take": shot["take"], "key": shot["take_key"], "seed": shot["seed"],
                  "selected": True, "shown": True, "status": shot["status"]}
                 ] if shot.get("take_key") else []
        for take in manifest.get("takes", {}).get(shot["id"], shown):
            if take["key"] not in records and has_take(store, take["key"]):
                records[take["key"]] = read_take_record(store, take["key"])
            record = records.get(take["key"], {})
            recipe = record.get("recipe") or {}
            takes.append({**take, "media": f"/media/{take_object(take['key'], MEDIA_NAME)}"
                          if record else None, "model": recipe.get("model"),
                          "steps": recipe.get("steps"), "prompt": recipe.get("prompt")})
        review = reviews.get(shot["id"])
        shots.append({
            "id": shot["id"], "record_in": shot["record_in"], "record_out": shot["record_out"],
            "media": f"/media/{project}/{sequence}/{version}/{shot['media']}",
            "take": shot["take"], "prompt": shot["prompt"], "model": shot["model"],
            "status": review.status if review else "",
            "chosen": review.take if review else None,
            "notes": [_note(n) for n in review.notes] if review else [],
            "history": [_note(d) for d in review.history] if review else [],
            "takes": takes})
    return {"project": project, "sequence": sequence, "version": version,
            "name": cut["name"], "fps": float(Fraction(cut.get("fps_exact") or cut["fps"])),
            "frames": cut["frames"], "timecode_start": cut["timecode_start"],
            "cut": f"/media/{project}/{sequence}/{version}/{manifest['roles']['cut']}",
            "versions": [f"v{n:03d}" for n in published_versions(store, project, sequence)],
            "shots": shots}


def _note(decision: Decision) -> dict[str, Any]:
    return {"at": decision.at.strftime("%Y-%m-%d %H:%M"), "reviewer": decision.reviewer,
            "version": decision.version, "action": decision.action.value, "take": decision.take,
            "frame": decision.frame, "timecode": decision.timecode, "note": decision.note}


def _decision_from(store, body: dict[str, Any], reviewer: str | None) -> Decision:
    """A decision from a posted body: the take's key, the shot of a frame and its timecode
    come from the version's manifest, the reviewer from the sign-in, never from the body."""
    from previz.assemble.edit import timecode_frames
    from previz.media.encode import timecode_of
    from previz.store import read_manifest

    unknown = sorted(set(body) - _DECISION_FIELDS)
    if unknown:  # the reviewer above all: it comes from the sign-in
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    project, sequence, version = body["project"], body["sequence"], body["version"]
    manifest = read_manifest(store, project, sequence, version)
    action = Action(body["action"])
    frame = body.get("frame")
    shot_id = body.get("shot")
    if frame is not None:
        frame = int(frame)
        if not 0 <= frame < manifest["cut"]["frames"]:
            raise ValueError(f"frame {frame} is outside the cut")
        # the shot on screen at that frame (in a dissolve, the incoming one)
        shot_id = [s["id"] for s in manifest["shots"] if s["record_in"] <= frame][-1]
    takes = {t["take"]: t for t in manifest.get("takes", {}).get(shot_id, [])}
    if shot_id not in manifest.get("takes", {}):
        raise ValueError(f"no shot {shot_id!r} in {version}")
    take = body.get("take")
    take_key = None
    if action.chooses_take:
        if take not in takes:
            raise ValueError(f"{shot_id} has no take {take!r}")
        take_key = takes[take]["key"]
    timecode = None
    if frame is not None:
        cut = manifest["cut"]
        rate = Fraction(cut.get("fps_exact") or cut["fps"])
        timecode = timecode_of(timecode_frames(cut["timecode_start"], rate) + frame, rate)
    return Decision(project=project, sequence=sequence, version=version, shot=shot_id,
                    action=action, take=take if action.chooses_take else None,
                    take_key=take_key, note=(body.get("note") or None), frame=frame,
                    timecode=timecode, reviewer=reviewer or "unknown")


_DECISION_FIELDS = {"project", "sequence", "version", "shot", "action", "take", "note", "frame"}


def serve(settings: ReviewSettings) -> None:
    import uvicorn

    app = review_app(settings)
    print(f"previz review: http://{settings.host}:{settings.port}/ (store {settings.store_uri};"
          f" Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                proxy_headers=True, server_header=False)


# -- pages (Jinja2, autoescaped; data for scripts as JSON) ----------------------------------------

_BASE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="previz-csrf" content="{{ csrf }}"><title>previz review</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;background:#16181c;color:#ddd}
a{color:#8cf} table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #333;
padding:.4em;vertical-align:top;text-align:left} video{max-width:100%;background:#000}
.takes{display:flex;gap:.6em;flex-wrap:wrap} .take{border:1px solid #444;padding:.3em;width:260px}
.take video{width:100%} .shown{border-color:#8cf} .chosen{border-color:#7d7;border-width:3px}
button{margin:.15em} .status{font-weight:bold} .notes li{cursor:pointer}
</style></head><body>{{ body | safe }}</body></html>"""

_LOGIN = """<h1>previz review</h1>
{% if failed %}<p role="alert">That token is not a reviewer's.</p>{% endif %}
<form method="post" action="/login"><label>Reviewer token
<input type="password" name="token" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form>"""

_INDEX = """<h1>previz review</h1><p>Signed in as {{ reviewer }}.</p>
{% for s in sequences %}<h2>{{ s.project }} {{ s.sequence }}</h2><ul>
{% for v in s.versions %}<li><a href="/v/{{ s.project }}/{{ s.sequence }}/{{ v }}">{{ v }}</a></li>
{% endfor %}</ul>{% else %}<p>No published versions in this store yet.</p>{% endfor %}"""

_VERSION = """<h1>{{ data.name }}</h1>
<p><a href="/">all versions</a> · {{ data.frames }} frames at {{ data.fps }} fps · reviewing as
<span id="reviewer">{{ reviewer }}</span></p>
<video id="cut" controls preload="auto" src="{{ data.cut }}"></video>
<p>Frame <span id="frame">0</span>
<input id="note-text" size="60" placeholder="a note at this frame (pauses the cut)">
<button id="note-add">Add note at this frame</button> <span id="said" role="status"></span></p>
<table><thead><tr><th>shot</th><th>takes</th><th>review</th></tr></thead><tbody>
{% for shot in data.shots %}
<tr id="shot-{{ shot.id }}" data-shot="{{ shot.id }}">
<td><b>{{ shot.id }}</b><br>frames {{ shot.record_in }}–{{ shot.record_out }}<br>
<button class="jump" data-frame="{{ shot.record_in }}">play from here</button><br>
compare with <select class="compare"><option value="">—</option>{% for v in data.versions %}
{% if v != data.version %}<option>{{ v }}</option>{% endif %}{% endfor %}</select>
<div class="compared"></div></td>
<td><div class="takes">{% for take in shot.takes %}
<div class="take{% if take.shown %} shown{% endif %}{% if shot.chosen == take.take %} chosen{% endif %}"
 data-take="{{ take.take }}">
<b>take {{ take.take }}</b>{% if take.shown %} (in this cut){% endif %}<br>
{% if take.media %}<video controls preload="metadata" src="{{ take.media }}"></video>{% else %}
<i>not rendered ({{ take.status }})</i>{% endif %}<br>
seed {{ take.seed }} · {{ take.model }} · {{ take.steps }} steps<br>
<small class="prompt">{{ take.prompt }}</small><br>
{% if take.media %}<button class="pick">Pick take {{ take.take }}</button>
<button class="approve">Approve take {{ take.take }}</button>{% endif %}
</div>{% endfor %}</div></td>
<td><span class="status">{{ shot.status }}</span><br>
<button class="needs-work">Needs work</button>
<ul class="notes">{% for n in shot.notes %}<li data-frame="{{ n.frame if n.frame is not none else shot.record_in }}">
{{ n.timecode or "" }} {{ n.reviewer }}: {{ n.note }}</li>{% endfor %}</ul>
<details><summary>history</summary><ul>{% for h in shot.history %}
<li>{{ h.at }} {{ h.version }} {{ h.reviewer }} {{ h.action }}{% if h.take %} take {{ h.take }}{% endif %}</li>
{% endfor %}</ul></details></td></tr>
{% endfor %}</tbody></table>
<script type="application/json" id="version-data">{{ data | tojson }}</script>
<script nonce="{{ nonce }}">
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("version-data").textContent);
  var csrf = document.querySelector('meta[name="previz-csrf"]').content;
  var fps = data.fps;
  var cut = document.getElementById("cut");
  function frameNow() { return Math.min(data.frames - 1, Math.floor(cut.currentTime * fps + 1e-3)); }
  function show() { document.getElementById("frame").textContent = frameNow(); }
  cut.addEventListener("timeupdate", show); cut.addEventListener("seeked", show);
  function seek(frame) { cut.pause(); cut.currentTime = (Number(frame) + 0.5) / fps; }
  function post(body, done) {
    body.project = data.project; body.sequence = data.sequence; body.version = data.version;
    fetch("/api/decisions", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-Previz-CSRF": csrf},
      body: JSON.stringify(body)}).then(function (r) { return r.json().then(function (j) {
        document.getElementById("said").textContent = r.ok ? "saved" : ("not saved: " + j.error);
        if (r.ok && done) { done(j); } }); });
  }
  document.querySelectorAll("tr[data-shot]").forEach(function (row) {
    var shot = row.dataset.shot;
    row.querySelectorAll(".take").forEach(function (box) {
      var take = Number(box.dataset.take);
      box.querySelectorAll(".pick, .approve").forEach(function (button) {
        button.addEventListener("click", function () {
          var action = button.classList.contains("approve") ? "approve" : "pick";
          post({shot: shot, take: take, action: action}, function () {
            row.querySelectorAll(".take").forEach(function (b) { b.classList.remove("chosen"); });
            box.classList.add("chosen");
            row.querySelector(".status").textContent = action === "approve" ? "approved" : "picked";
          });
        });
      });
    });
    row.querySelector(".needs-work").addEventListener("click", function () {
      post({shot: shot, action: "needs_work"}, function () {
        row.querySelector(".status").textContent = "needs work"; });
    });
    row.querySelector(".jump").addEventListener("click", function (e) { seek(e.target.dataset.frame); });
    row.querySelectorAll(".notes li").forEach(function (li) {
      li.addEventListener("click", function () { seek(li.dataset.frame); });
    });
    row.querySelector(".compare").addEventListener("change", function (e) {
      var other = e.target.value, target = row.querySelector(".compared");
      target.textContent = "";
      if (!other) { return; }
      fetch("/api/v/" + data.project + "/" + data.sequence + "/" + other,
            {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (o) {
        var match = (o.shots || []).filter(function (s) { return s.id === shot; })[0];
        if (!match) { target.textContent = other + " has no " + shot; return; }
        var video = document.createElement("video");
        video.controls = true; video.src = match.media; video.width = 240;
        var label = document.createElement("div");
        label.textContent = other + ": take " + match.take;
        target.appendChild(label); target.appendChild(video);
      });
    });
  });
  var text = document.getElementById("note-text");
  text.addEventListener("focus", function () { cut.pause(); });
  document.getElementById("note-add").addEventListener("click", function () {
    var frame = frameNow();
    if (!text.value.trim()) { return; }
    post({action: "note", frame: frame, note: text.value}, function (saved) {
      var row = document.getElementById("shot-" + saved.shot);
      var li = document.createElement("li");
      li.dataset.frame = saved.frame;
      li.textContent = saved.timecode + " " + saved.reviewer + ": " + saved.note;
      li.addEventListener("click", function () { seek(saved.frame); });
      row.querySelector(".notes").appendChild(li);
      text.value = "";
    });
  });
})();
</script>"""
