"""The review page: one self-contained HTML file in the version folder.

The cut plays at the top; below, every shot with its thumbnail, code, duration, prompt, model,
seed, status and all its takes (the one in the cut marked). Clicking a shot seeks the player to
it. Styles, script and thumbnails are inline, so the page needs nothing but the media it plays.

Media are referenced by their names in the version folder (the page works from a local folder).
Where the folder is served from presigned links, the links are given either when the page is
made (`urls`) or when it is opened, in the page address's fragment:
`review.html#media=<encodeURIComponent(JSON {name: url})>` (see `review_link`) — a fragment never
reaches the server, and the published page stays immutable. Only http(s) and file URLs are
accepted from the fragment.

Everything shown is escaped; a Content-Security-Policy allows only this page's own script (by
hash), so even a prompt that slipped past escaping could not run script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import quote

from previz.assemble.types import CutShot

__all__ = ["ReviewTake", "review_html", "review_link", "PAGE_NAME"]

PAGE_NAME = "review.html"


@dataclass(frozen=True)
class ReviewTake:
    take: int
    seed: int
    key: str
    selected: bool  # the storyboard's pick
    shown: bool  # the media in the cut
    status: str  # done, failed, blocked, skipped, unknown, draft
    draft: str | None = None  # a deadline stand-in's label: DRAFT, DRAFT 10/40 STEPS


_SCRIPT = """
(function () {
  "use strict";
  var video = document.getElementById("player");
  var allowed = {"http:": true, "https:": true, "file:": true};
  function injectMedia() {
    var match = /(?:^#|&)media=([^&]*)/.exec(window.location.hash);
    if (!match) { return; }
    var map;
    try { map = JSON.parse(decodeURIComponent(match[1])); } catch (e) { return; }
    if (!map || typeof map !== "object") { return; }
    document.querySelectorAll("[data-media]").forEach(function (el) {
      var url = map[el.getAttribute("data-media")];
      if (typeof url !== "string") { return; }
      var parsed;
      try { parsed = new URL(url, window.location.href); } catch (e) { return; }
      if (!allowed[parsed.protocol]) { return; }
      if (el.tagName === "A") { el.href = parsed.href; } else { el.src = parsed.href; }
    });
  }
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.shot"));
  function mark(row) {
    rows.forEach(function (r) { r.classList.toggle("current", r === row); });
  }
  function seek(row) {
    video.currentTime = Number(row.getAttribute("data-seek"));
    mark(row);
  }
  rows.forEach(function (row) {
    row.addEventListener("click", function () { seek(row); });
    row.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); seek(row); }
    });
  });
  video.addEventListener("timeupdate", function () {
    var t = video.currentTime, found = null;
    rows.forEach(function (row) {
      if (t >= Number(row.getAttribute("data-start"))) { found = row; }
    });
    if (found) { mark(found); }
  });
  injectMedia();
})();
"""

_STYLE = """
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;background:#16171b;
color:#e6e6e6}
header{padding:12px 20px;background:#0e0f12;border-bottom:1px solid #2a2c33}
h1{font-size:18px;margin:0 0 4px}
.meta{color:#9aa0ab;font-size:13px}
.meta span{margin-right:14px}
main{padding:16px 20px}
video{width:100%;max-width:960px;background:#000;display:block;margin:0 auto 12px}
.files{text-align:center;margin-bottom:16px}
.files a{color:#8ab4ff;margin:0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid #2a2c33}
th{color:#9aa0ab;font-weight:600;font-size:12px;text-transform:uppercase}
tr.shot{cursor:pointer}
tr.shot:hover{background:#22242b}
tr.shot.current{background:#2b3245}
tr.shot:focus{outline:2px solid #8ab4ff}
img.thumb{width:160px;display:block;border-radius:3px}
.code{font-weight:700;font-size:15px}
.prompt{max-width:420px;white-space:pre-wrap;word-break:break-word}
.note{color:#ffd27a;margin-top:4px}
.error{color:#ff8a80;margin-top:4px}
.status{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;background:#34373f}
.status.rendered,.status.cached{background:#1f4d2e}
.status.draft{background:#6b5210}
.status.failed,.status.missing,.status.skipped{background:#6b1f1f}
ul.takes{list-style:none;margin:0;padding:0;font-size:12px;color:#b8bcc6}
ul.takes li.shown{color:#fff;font-weight:600}
.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _url(name: str, urls: Mapping[str, str]) -> str:
    return urls.get(name) or quote(name)


def review_html(*, title: str, project: str, sequence: str, version: str, fps: Fraction,
                width: int, height: int, frames: int, timecode_start: str, duration_tc: str,
                date: str, shots: Sequence[CutShot], thumbnails: Sequence[bytes],
                takes: Sequence[Sequence[ReviewTake]], player: str, slate_frames: int,
                record_timecodes: Sequence[tuple[str, str]], downloads: Sequence[tuple[str, str]],
                urls: Mapping[str, str] | None = None, warnings: Sequence[str] = ()) -> str:
    """The page as a string. `player` is the file name of the video to play, `downloads`
    (label, file name) pairs, `urls` file name -> URL overrides (presigned links)."""
    urls = dict(urls or {})
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    csp = ("default-src 'none'; "
           f"script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; "
           "img-src data:; media-src 'self' * file: blob:; base-uri 'none'; form-action 'none'")
    counts: dict[str, int] = {}
    for shot in shots:
        counts[shot.status] = counts.get(shot.status, 0) + 1
    rows = []
    for shot, thumb, shot_takes, (tc_in, tc_out) in zip(shots, thumbnails, takes,
                                                         record_timecodes, strict=True):
        start = Fraction(slate_frames + shot.record_in) / fps
        seek = start + Fraction(1, 4) / fps  # inside the shot's first frame
        take_items = "".join(
            f'<li class="{"shown" if t.shown else ""}">'
            f'{"▶ " if t.shown else ""}t{t.take} seed {t.seed} · {_e(t.status)}'
            f'{" · selected" if t.selected else ""}{" · " + _e(t.draft.lower()) if t.draft else ""}'
            f' <span class="mono">{_e(t.key[:10])}</span></li>'
            for t in shot_takes)
        extra = ""
        if shot.prompt_template != shot.prompt:
            extra += f'<div class="template mono">as written: {_e(shot.prompt_template)}</div>'
        if shot.notes:
            extra += f'<div class="note">Note: {_e(shot.notes)}</div>'
        for character, line in shot.dialogue:
            extra += f'<div class="dialogue">{_e(character)}: “{_e(line)}”</div>'
        if shot.sound:
            extra += f'<div class="sound">Sound: {_e(shot.sound)}</div>'
        if shot.controls:
            extra += '<div class="controls">Steered by: ' + ", ".join(
                f'<a data-media="{_e(name)}" href="{_e(_url(name, urls))}">{_e(label)}</a>'
                for label, name in shot.controls) + "</div>"
        if shot.error:
            extra += f'<div class="error">{_e(shot.error)}</div>'
        steps = ""
        if shot.steps is not None and shot.steps < shot.final_steps:
            steps = (f'<br><span class="mono fewer-steps">{shot.steps} of {shot.final_steps} '
                     'steps</span>')
        thumb_src = "data:image/jpeg;base64," + base64.b64encode(thumb).decode()
        rows.append(
            f'<tr class="shot" id="{_e(shot.id)}" tabindex="0" data-shot="{_e(shot.id)}" '
            f'data-start="{float(start):.6f}" data-seek="{float(seek):.6f}" '
            f'data-record-in="{shot.record_in}">'
            f'<td><img class="thumb" alt="{_e(shot.id)}" src="{thumb_src}"></td>'
            f'<td><div class="code">{_e(shot.id)}</div>'
            f'<div class="mono">{_e(tc_in)}<br>{_e(tc_out)}</div></td>'
            f'<td>{shot.frames}f<br>{float(shot.frames / fps):.2f}s'
            f'{"<br>" + _e(shot.transition) + " " + str(shot.transition_frames) + "f" if shot.transition != "cut" else ""}'
            f'{"<br>fade_to_black " + str(shot.fade_out) + "f" if shot.fade_out else ""}'
            f'</td>'
            f'<td><div class="prompt">{_e(shot.prompt)}</div>{extra}</td>'
            f'<td>{_e(shot.model)}<br><span class="mono">seed {_e(shot.seed)}</span>{steps}</td>'
            f'<td><span class="status {_e(shot.status)}">{_e(shot.status)}</span></td>'
            f'<td><ul class="takes">{take_items}</ul></td></tr>')
    links = "".join(f'<a data-media="{_e(name)}" href="{_e(_url(name, urls))}">{_e(label)}</a>'
                    for label, name in downloads)
    status_text = ", ".join(f"{n} {_e(s)}" for s, n in sorted(counts.items()))
    warning_html = "".join(f'<div class="error">{_e(w)}</div>' for w in warnings)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} — review</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<div class="meta"><span>{_e(project)} / {_e(sequence)} / {_e(version)}</span>
<span>{len(shots)} shots ({status_text})</span>
<span>{frames} frames · {_e(duration_tc)} at {_e(_fps_text(fps))} fps</span>
<span>{width}×{height}</span><span>from {_e(timecode_start)}</span><span>{_e(date)}</span></div>
{warning_html}
</header>
<main>
<video id="player" controls preload="metadata" playsinline data-media="{_e(player)}"
 src="{_e(_url(player, urls))}" data-slate-frames="{slate_frames}"></video>
<div class="files">{links}</div>
<table id="shots">
<thead><tr><th></th><th>Shot</th><th>Length</th><th>Prompt</th><th>Model</th><th>Status</th>
<th>Takes</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}"


def review_link(page_url: str, links: Mapping[str, str]) -> str:
    """The review page's address with media links in its fragment (for presigned links)."""
    data = json.dumps(dict(links), separators=(",", ":"), sort_keys=True)
    return page_url.split("#", 1)[0] + "#media=" + quote(data, safe="")
