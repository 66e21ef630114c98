"""`previz review` in a real headless Chromium: open a version, play it, pick take 2 of a shot and
approve it, note a frame, reload and find both; a second browser posting at the same moment
loses nothing; the next render selects take 2 and carries the note as a marker. And the
server's guards: cross-site posts, other hosts without tokens, tokens, markup left inert."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import opentimelineio as otio
import pytest
from browser_support import WAIT_S, start_chromium
from command_support import clean_env, render_json, run_previz
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from previz.dailies.decisions import Action, read_decisions
from previz.store import open_store, read_manifest

pytestmark = pytest.mark.slow

BOARD = """\
    project: TEST
    sequence: SQ010
    fps: 24
    resolution: 192x108
    defaults: {model: draft, seed: 1}
    shots:
      - {id: SH0010, duration: 24f, prompt: "a lighthouse <script>window.__pwned=1</script>"}
      - {id: SH0020, duration: 48f, prompt: waves on rocks, takes: 2}
      - {id: SH0030, duration: 24f, prompt: the lamp turns}
"""
NOTE = "<img src=x onerror=window.__pwned=2> the lamp flickers"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """To see a redirect itself (its status and location), not where it leads."""

    def redirect_request(self, *args, **kwargs):
        return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, store: Path, *args: str, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "previz", "review", str(store), "--port", str(self.port),
             *args], env=env or clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        limit = time.monotonic() + 60
        while time.monotonic() < limit:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"previz review did not start: {self.process.stderr.read()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dailies")
    board = folder / "board.yaml"
    board.write_text(textwrap.dedent(BOARD))
    store = folder / "store"
    first = render_json(board, store)
    assert first["version"] == "v001"
    return board, store


def _wait(driver, script: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script(script))


def test_a_supervisors_dailies_reach_the_nextrender_json(rendered):
    board, store = rendered
    server = Server(store)
    first, second = start_chromium(), start_chromium()
    try:
        page = f"{server.url}/v/TEST/SQ010/v001"
        first.get(page)
        # every take of the shot is there to compare, playable
        row = first.find_element(By.ID, "shot-SH0020")
        boxes = row.find_elements(By.CSS_SELECTOR, ".take")
        assert [b.get_attribute("data-take") for b in boxes] == ["1", "2"]
        assert "seed 2" in boxes[1].text and "draft" in boxes[1].text
        # the cut plays
        first.execute_script("document.getElementById('cut').play()")
        _wait(first, "return document.getElementById('cut').currentTime > 0.2")
        # pick take 2, approve it
        boxes[1].find_element(By.CSS_SELECTOR, ".pick").click()
        _wait(first, "return document.getElementById('said').textContent === 'saved'")
        first.execute_script("document.getElementById('said').textContent = ''")
        boxes[1].find_element(By.CSS_SELECTOR, ".approve").click()
        _wait(first, "return document.querySelector('#shot-SH0020 .status').textContent"
                     " === 'approved'")
        # a note at frame 37 (in SH0020, which runs from frame 24): pause there, write, add
        first.execute_script("var v = document.getElementById('cut'); v.pause();"
                             "v.currentTime = 37.5 / 24;")
        _wait(first, "return document.getElementById('frame').textContent === '37'")
        first.find_element(By.ID, "note-text").send_keys(NOTE)
        # ... while a second reviewer's browser posts twenty notes at the same moment
        second.get(page)
        second.execute_script("""
            var csrf = document.querySelector('meta[name="previz-csrf"]').content;
            window.__posted = 0;
            for (var i = 0; i < 20; i++) {
              fetch('/api/decisions', {method: 'POST', headers: {'Content-Type':
                'application/json', 'X-Previz-CSRF': csrf}, body: JSON.stringify({project:
                'TEST', sequence: 'SQ010', version: 'v001', action: 'note', frame: 80,
                note: 'second ' + i})}).then(function (r) { if (r.ok) window.__posted++; });
            }""")
        first.find_element(By.ID, "note-add").click()
        _wait(first, "return document.querySelector('#shot-SH0020 .notes li') !== null")
        _wait(second, "return window.__posted === 20")
        # reload: both decisions are there, from the store
        first.get(page)
        row = first.find_element(By.ID, "shot-SH0020")
        assert row.find_element(By.CSS_SELECTOR, ".status").text == "approved"
        chosen = row.find_elements(By.CSS_SELECTOR, ".take.chosen")
        assert [b.get_attribute("data-take") for b in chosen] == ["2"]
        note = row.find_element(By.CSS_SELECTOR, ".notes li")
        assert note.text.startswith("01:00:01:13 ") and NOTE in note.text
        assert first.execute_script("return window.__pwned") is None  # markup stayed text
        # a click on the note seeks the cut to its frame
        note.click()
        _wait(first, "return document.getElementById('frame').textContent === '37'")
    finally:
        first.quit()
        second.quit()
        server.stop()
    decisions = read_decisions(open_store(str(store)), "TEST", "SQ010")
    notes = [d for d in decisions if d.action is Action.NOTE]
    assert len(notes) == 21 and sum(d.note.startswith("second ") for d in notes) == 20
    assert {d.shot for d in notes if d.frame == 80} == {"SH0030"}
    # the next render follows: take 2 in the cut, the note a marker at its frame
    again = render_json(board, store)
    assert "SH0020: take 2 approved by" in again["stderr"]
    assert {s["id"]: s["take"] for s in again["shots"]}["SH0020"] == \
        read_manifest(open_store(str(store)), "TEST", "SQ010", "v001")["takes"]["SH0020"][1]["key"]
    manifest = read_manifest(open_store(str(store)), "TEST", "SQ010", again["version"])
    assert {s["id"]: s["take"] for s in manifest["shots"]}["SH0020"] == 2
    timeline = otio.adapters.read_from_file(str(store / "TEST" / "SQ010" / again["version"] /
                                                 f"SQ010_previz_{again['version']}.otio"))
    clip = next(c for c in timeline.find_clips() if c.name.startswith("SH0020"))
    marker = next(m for m in clip.markers if NOTE in m.name)
    assert marker.marked_range.start_time.value == 1001 + 13  # frame 37 is 13 into SH0020
    # the shot in the new version, compared with the one the decisions were made on
    server, browser = Server(store), start_chromium()
    try:
        browser.get(f"{server.url}/v/TEST/SQ010/{again['version']}")
        select = browser.find_element(By.CSS_SELECTOR, "#shot-SH0020 .compare")
        select.find_element(By.XPATH, "option[text()='v001']").click()
        _wait(browser, "var v = document.querySelector('#shot-SH0020 .compared video');"
                       "return v !== null && v.readyState >= 1")
        label = browser.find_element(By.CSS_SELECTOR, "#shot-SH0020 .compared div").text
        assert label == "v001: take 1"
        history = browser.find_element(By.CSS_SELECTOR, "#shot-SH0020 details")
        assert "v001" in history.get_attribute("textContent") and "approve take 2" in \
            history.get_attribute("textContent")
    finally:
        browser.quit()
        server.stop()
    ignored = render_json(board, store, "--ignore-decisions")
    assert {s["id"]: s["take"] for s in ignored["shots"]}["SH0020"] == \
        read_manifest(open_store(str(store)), "TEST", "SQ010", "v001")["takes"]["SH0020"][0]["key"]


def test_the_servers_guards(rendered, tmp_path):
    _, store = rendered
    # any address but loopback needs reviewers' tokens
    refused = run_previz("review", str(store), "--host", "0.0.0.0", "--port",
                         str(_free_port()), timeout=60)
    assert refused.returncode == 2 and "--tokens" in refused.stderr
    tokens = tmp_path / "tokens"
    tokens.write_text("ana: " + "a" * 32 + "\nben: " + "b" * 32 + "\n")
    server = Server(store, "--tokens", str(tokens))
    try:
        def call(path: str, data: bytes | None = None, **headers: str):
            request = urllib.request.Request(server.url + path, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return answer.status, answer.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        assert call("/api/v/TEST/SQ010/v001")[0] == 401  # not signed in
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(urllib.request.Request(server.url + "/login",
                                               data=b"token=" + b"b" * 32), timeout=30)
        except urllib.error.HTTPError as signed:
            assert signed.code == 303
            cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        session = cookie.split(";")[0]
        status, page = call("/v/TEST/SQ010/v001", Cookie=session)
        assert status == 200 and "reviewing as\n<span id=\"reviewer\">ben</span>" in page
        csrf = page.split('name="previz-csrf" content="')[1].split('"')[0]
        body = json.dumps({"project": "TEST", "sequence": "SQ010", "version": "v001",
                           "shot": "SH0030", "action": "needs_work",
                           "reviewer": "ana"}).encode()  # a name in the form is not used
        assert call("/api/decisions", body, Cookie=session)[0] == 403  # no CSRF header
        assert call("/api/decisions", body, Cookie=session, **{
            "X-Previz-CSRF": csrf, "Origin": "http://evil.example",
            "Content-Type": "application/json"})[0] == 403
        status, saved = call("/api/decisions", body, Cookie=session, **{
            "X-Previz-CSRF": csrf, "Content-Type": "application/json"})
        assert status == 400 and "reviewer" in saved  # unknown fields are refused
        body = body.replace(b', "reviewer": "ana"', b"")
        status, saved = call("/api/decisions", body, Cookie=session, **{
            "X-Previz-CSRF": csrf, "Content-Type": "application/json"})
        assert status == 201 and json.loads(saved)["reviewer"] == "ben"
        assert call("/media/decisions/TEST/SQ010/x.json", Cookie=session)[0] == 404
        assert call("/v/TEST/..%2F..%2Fetc/v001", Cookie=session)[0] == 404  # not an id
        assert call("/api/v/TEST/SQ010/v999", Cookie=session)[0] == 404
    finally:
        server.stop()
    # --sequence: that sequence only, opening on its latest version
    refused = run_previz("review", str(store), "--sequence", "SQ010", timeout=60)
    assert refused.returncode == 2 and "PROJECT/SEQUENCE" in refused.stderr
    server = Server(store, "--sequence", "TEST/SQ010")
    try:
        with pytest.raises(urllib.error.HTTPError) as opened:
            urllib.request.build_opener(NoRedirect).open(server.url + "/", timeout=30)
        latest = read_manifest(open_store(str(store)), "TEST", "SQ010", "latest")["cut"]["version"]
        assert opened.value.code == 303
        assert opened.value.headers["location"] == f"/v/TEST/SQ010/{latest}"
    finally:
        server.stop()
