"""review.html in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
every shot listed, a click seeks the player, markup in prompts stays text, presigned S3 links."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import urllib.request
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from assemble_support import build_cut
from browser_support import WAIT_S, start_chromium
from conftest import make_plan, write_takes
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from synth import level_of

from previz.assemble import assemble_and_publish
from previz.engine import RenderReport, ShotOutcome
from previz.store import open_store, publish_take

# the S3 service of the store tests (moto's server mode on loopback), reused as it is
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from store.conftest import aws_env, bucket, moto_url  # noqa: E402, F401

SIZE = (384, 216)
PROMPTS = {
    0: "a lighthouse <script>window.__pwned=1</script> at dusk",
    1: "the {LAMP_ROOM} at night",
    2: '<img src=x onerror="window.__pwned=2"> the keeper & his lamp',
}
LOCATIONS = {"LAMP_ROOM": "glass lamp room"}
NOTES = {1: "</td></tr><script>window.__pwned=3</script>"}
ERROR = "<svg onload=window.__pwned=4> CUDA out of memory"
LAYOUT = [(30, None), (24, "dissolve 6"), (30, None), (24, None)]
FAILED = 3


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def local_cut(tmp_path_factory):
    folder = tmp_path_factory.mktemp("review-page")
    plan, _, cut = build_cut(folder, LAYOUT, size=SIZE, prompts=PROMPTS, notes=NOTES,
                             failed=[FAILED], errors={FAILED: ERROR}, locations=LOCATIONS)
    return plan, cut


def wait(driver, script: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script(script))


def open_page(driver, url: str) -> None:
    driver.get("about:blank")  # a new document every time, even where only the fragment differs
    driver.get(url)
    state = wait(driver, "var v = document.getElementById('player');"
                         "return (v.readyState >= 1 || v.error) && [v.readyState, v.error];")
    assert state[1] is None, f"the player could not load its video: {state}"


def seek_by_clicking(driver, shot_id: str) -> float:
    driver.find_element(By.ID, shot_id).click()
    return wait(driver, "var v = document.getElementById('player');"
                        "return !v.seeking && v.readyState >= 3 && [v.currentTime];")[0]


def shown_picture(driver) -> tuple[float, float, float]:
    """Mean RGB of the player's picture in a strip below the frame code and the card's text,
    above the bottom burn-ins."""
    player = driver.find_element(By.ID, "player")
    # in view (a click on a shot scrolls down to it), and no controls over the picture
    driver.execute_script("arguments[0].controls = false; arguments[0].scrollIntoView(true)",
                          player)
    png = player.screenshot_as_png
    driver.execute_script("arguments[0].controls = true", player)
    with Image.open(io.BytesIO(png)) as image:
        picture = np.asarray(image.convert("RGB"), dtype=np.float64)
    height, width = picture.shape[:2]
    strip = picture[int(height * 0.75):int(height * 0.85), int(width * 0.35):int(width * 0.65)]
    return tuple(float(v) for v in strip.reshape(-1, 3).mean(axis=0))


def check_shot_shows(driver, plan, index: int) -> None:
    """At a shot's first frame the player shows that shot (a dissolve's first frame is still
    mostly the shot before: not checked)."""
    if plan.shots[index].transition.type != "cut":
        return
    red, green, blue = shown_picture(driver)
    if index == FAILED:  # the placeholder card's dark red
        assert red > green + 10 and red < 100, (red, green, blue)
    else:  # the take's own grey (shot n is take id n)
        assert abs(green - level_of(index + 1)) < 12, (index, red, green, blue)


def test_every_shot_is_listed_with_its_details(browser, local_cut):
    plan, cut = local_cut
    open_page(browser, cut.review_page.as_uri())
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('tr.shot')).map(function (r) {"
        "  return [r.id, r.querySelector('.code').textContent,"
        "          r.querySelector('.prompt').textContent,"
        "          r.querySelector('.status').textContent,"
        "          r.querySelector('img.thumb').naturalWidth]; });")
    assert [r[0] for r in rows] == [r[1] for r in rows] == [s.id for s in plan.shots]
    # The prompt as the model read it; the storyboard's words under it where they differ.
    assert [r[2] for r in rows] == [
        PROMPTS.get(i, f"shot {i + 1} of the test sequence").replace("{LAMP_ROOM}",
                                                                     LOCATIONS["LAMP_ROOM"])
        for i in range(len(plan.shots))]
    assert browser.execute_script(
        "return Array.from(document.querySelectorAll('tr.shot .template'))"
        "  .map(function (e) { return e.textContent; });") == [f"as written: {PROMPTS[1]}"]
    assert [r[3] for r in rows] == ["rendered", "rendered", "rendered", "failed"]
    assert all(r[4] > 0 for r in rows)  # the inline thumbnails decode
    assert browser.title.startswith(cut.name)


def test_clicking_a_shot_seeks_the_player_to_it(browser, local_cut):
    plan, cut = local_cut
    open_page(browser, cut.review_page.as_uri())
    slate = cut.manifest["cut"]["slate_frames"]
    fps = plan.fps_fraction
    duration = browser.execute_script("return document.getElementById('player').duration")
    assert duration == pytest.approx(float((slate + plan.frames) / fps), abs=0.05)
    for index in (2, 0, 3, 1):  # out of order: each click seeks
        shot = plan.shots[index]
        now = seek_by_clicking(browser, shot.id)
        record_in = float(Fraction(slate + shot.record_in) / fps)
        assert record_in <= now < record_in + 0.5 / float(fps), (shot.id, now, record_in)
        current = browser.execute_script(
            "return Array.from(document.querySelectorAll('tr.shot.current')).map("
            "function (r) { return r.id; })")
        assert current == [shot.id]
        check_shot_shows(browser, plan, index)


def test_markup_in_prompts_notes_and_errors_is_shown_as_text(browser, local_cut):
    plan, cut = local_cut
    open_page(browser, cut.review_page.as_uri())
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    found = browser.execute_script(
        "return [document.scripts.length,"
        "        document.querySelectorAll('img[src=\"x\"], svg, tr.shot script').length,"
        "        document.querySelectorAll('tr.shot').length,"
        "        document.querySelector('#SH0020 .note').textContent,"
        "        document.querySelector('#SH0040 .error').textContent];")
    assert found == [1, 0, len(plan.shots), f"Note: {NOTES[1]}", ERROR]
    text = browser.find_element(By.TAG_NAME, "body").text
    for prompt in PROMPTS.values():
        assert prompt.replace("{LAMP_ROOM}", LOCATIONS["LAMP_ROOM"]) in text
    # media links in the fragment: http(s) and file only, never javascript:
    links = {"SQ010_previz_v001.otio": "javascript:window.__pwned=5",
             "SQ010_previz_v001.edl": "https://example.invalid/cut.edl"}
    open_page(browser, cut.review_page.as_uri() + "#media=" + quote(json.dumps(links), safe=""))
    hrefs = browser.execute_script(
        "var out = {}; document.querySelectorAll('a[data-media]').forEach(function (a) {"
        "  out[a.getAttribute('data-media')] = a.href; }); return out;")
    assert hrefs["SQ010_previz_v001.edl"] == "https://example.invalid/cut.edl"
    assert hrefs["SQ010_previz_v001.otio"] == (cut.folder / "SQ010_previz_v001.otio").as_uri()
    assert browser.execute_script("return typeof window.__pwned") == "undefined"


def test_the_cut_plays_and_a_screenshot_is_kept(browser, local_cut, artifacts):
    plan, cut = local_cut
    open_page(browser, cut.review_page.as_uri())
    shot = plan.shots[2]
    start = seek_by_clicking(browser, shot.id)
    browser.execute_script("document.getElementById('player').play()")
    now = wait(browser, "var v = document.getElementById('player');"
                        f"return v.currentTime > {start + 0.25} && [v.currentTime];")[0]
    browser.execute_script("document.getElementById('player').pause()")
    assert now < float(Fraction(cut.manifest["cut"]["slate_frames"] + shot.record_out)
                       / plan.fps_fraction)
    browser.execute_script("window.scrollTo(0, 0)")
    picture = artifacts / "review.png"
    assert browser.save_screenshot(str(picture))
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width >= 1000


def publish_to_s3(bucket_name: str, folder: Path):
    """Takes published to the S3 store, then the cut as `previz render` publishes it."""
    uri = f"s3://{bucket_name}/previz"
    store = open_store(uri)
    plan = make_plan(folder, LAYOUT[:3], size=SIZE)
    takes = write_takes(plan, folder / "takes")
    for shot in plan.shots:
        publish_take(store, takes[shot.id].key, takes[shot.id].path, {"shot": shot.id})
    report = RenderReport(
        run_id="run-s3", shots=[ShotOutcome(s.id, "rendered", s.selected_take.key, False)
                                for s in plan.shots],
        attempts=[], started=0.0, finished=1.0, gaps=[], loads=1, take_status={})
    result = assemble_and_publish(plan, uri, report)
    assert result.version == "v001"
    with urllib.request.urlopen(result.links["manifest.json"], timeout=WAIT_S) as response:
        manifest = json.loads(response.read())
    return plan, result, manifest


def test_every_published_file_loads_from_its_presigned_link(bucket, tmp_path):  # noqa: F811
    _, result, manifest = publish_to_s3(bucket, tmp_path)
    links = result.links
    assert set(links) == {*manifest["files"], "manifest.json"}
    assert {"review.html", "SQ010_previz_v001_review.mp4", "SQ010_previz_v001.otio"} <= set(links)
    for name, info in manifest["files"].items():
        assert links[name].startswith("http://") and "X-Amz-Signature=" in links[name], name
        with urllib.request.urlopen(links[name], timeout=WAIT_S) as response:
            assert response.status == 200, name
            data = response.read()
        assert len(data) == info["size"], name
        assert hashlib.sha256(data).hexdigest() == info["sha256"], name
    # the page's own link carries the others in its fragment
    page = result.review
    assert page.startswith(links["review.html"] + "#media=")
    with urllib.request.urlopen(page, timeout=WAIT_S) as response:  # the fragment stays here
        assert response.status == 200
        assert response.headers.get_content_type() == "text/html"


def test_review_page_plays_and_seeks_from_presigned_links(bucket, browser,  # noqa: F811
                                                          tmp_path):
    plan, result, manifest = publish_to_s3(bucket, tmp_path)
    links = result.links
    open_page(browser, result.review)
    review = manifest["roles"]["review"]
    player = browser.execute_script("var v = document.getElementById('player');"
                                    "return [v.currentSrc, v.duration];")
    assert player[0] == links[review]  # the presigned link, not the bare name beside the page
    slate = manifest["cut"]["slate_frames"]
    assert player[1] == pytest.approx(float((slate + plan.frames) / plan.fps_fraction), abs=0.05)
    hrefs = browser.execute_script(
        "var out = {}; document.querySelectorAll('a[data-media]').forEach(function (a) {"
        "  out[a.getAttribute('data-media')] = a.href; }); return out;")
    assert hrefs and all(hrefs[name] == links[name] for name in hrefs)
    shot = plan.shots[2]
    now = seek_by_clicking(browser, shot.id)
    record_in = float(Fraction(slate + shot.record_in) / plan.fps_fraction)
    assert record_in <= now < record_in + 0.5 / float(plan.fps_fraction)
    check_shot_shows(browser, plan, 2)
