"""Content credentials (C2PA): signed with a throw-away CA's certificate, read back and validated
by c2pa's own reader; tampered, untrusted and unsigned files fail `previz verify`; unusable
signing settings stop a render before anything is rendered."""

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from command_support import clean_env, render_json, run_previz
from credentials_support import make_ca
from PIL import Image

from previz.media.credentials import (
    CredentialsError,
    Ingredient,
    is_signed,
    sign_derived,
    sign_take,
    signing_from_env,
    verify_file,
)
from previz.media.encode import encode_take
from previz.plan import plan_from_storyboard
from previz.storyboard import load_storyboard

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "{KEEPER} climbs the stairs of the lighthouse"


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """The last task of a Wan VACE take conditioned on a character's reference image."""
    folder = tmp_path_factory.mktemp("board")
    (folder / "refs").mkdir()
    Image.new("RGB", (64, 64), (200, 180, 20)).save(folder / "refs" / "keeper.png")
    (folder / "board.yaml").write_text(textwrap.dedent(f"""\
        project: LIGHTHOUSE
        sequence: SQ020
        fps: 24
        resolution: 832x480
        characters:
          KEEPER: {{description: an old keeper, reference: refs/keeper.png}}
        shots:
          - {{id: SH0010, duration: 48f, prompt: "{PROMPT}", model: wan2.1-vace-1.3b, seed: 7}}
    """))
    plan = plan_from_storyboard(load_storyboard(folder / "board.yaml"))
    take = plan.shots[0].selected_take
    return take.final_task, take.key


def _media(folder: Path, name: str = "take.mp4") -> Path:
    frames = np.zeros((8, 48, 64, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(8, dtype=np.uint8)[:, None, None] * 30
    path = folder / name
    encode_take(frames, 16, path, width=64, height=48)
    return path


def _signing(ca, monkeypatch, **extra):
    for name, value in {**ca.env, **extra}.items():
        monkeypatch.setenv(name, value)
    return signing_from_env()


def test_a_take_says_what_made_it_and_from_what(task, test_ca, tmp_path, monkeypatch):
    shot_task, key = task
    signing = _signing(test_ca, monkeypatch)
    media = sign_take(_media(tmp_path), signing, task=shot_task, take_key=key,
                      source_type="trainedAlgorithmicMedia", generator_version="3")
    made = verify_file(media, test_ca.ca.read_text())
    assert made.state == "trusted" and made.ok
    assert made.source_type == "trainedAlgorithmicMedia"
    assert made.agent.startswith("wan2.1-vace-1.3b") and "previz signer" in made.signer
    recipe = made.recipe
    assert (recipe["take_key"], recipe["seed"], recipe["steps"]) == (key, 7, shot_task.steps)
    assert recipe["weights"]["location"] == shot_task.weights
    # the prompt is confidential by default: only its hash travels with the media
    assert "prompt" not in recipe and len(recipe["prompt_sha256"]) == 64
    assert b"climbs the stairs" not in media.read_bytes()
    # the reference image it was conditioned on is an ingredient
    assert made.ingredients == ("reference: keeper.png",)
    # nothing of the key is in the file
    key_body = "".join(test_ca.key.read_text().splitlines()[1:-1])
    assert key_body[:40].encode() not in media.read_bytes()


def test_prompts_in_clear_only_when_the_setting_says(task, test_ca, tmp_path, monkeypatch):
    shot_task, key = task
    signing = _signing(test_ca, monkeypatch, PREVIZ_C2PA_PROMPTS="include")
    media = sign_take(_media(tmp_path), signing, task=shot_task, take_key=key,
                      source_type="trainedAlgorithmicMedia", generator_version="3")
    assert "lighthouse" in verify_file(media).recipe["prompt"]


def test_tampered_untrusted_and_unsigned_files_fail_verify(task, test_ca, tmp_path, monkeypatch):
    shot_task, key = task
    signing = _signing(test_ca, monkeypatch)
    signed = sign_take(_media(tmp_path), signing, task=shot_task, take_key=key,
                       source_type="trainedAlgorithmicMedia", generator_version="3")
    tampered = tmp_path / "tampered.mp4"
    data = bytearray(signed.read_bytes())
    data[data.find(b"mdat") + 64] ^= 0x01  # one bit of one byte of the picture
    tampered.write_bytes(bytes(data))
    unsigned = _media(tmp_path, "unsigned.mp4")
    other_ca = make_ca(tmp_path / "other-ca")

    def verify(*args: str) -> subprocess.CompletedProcess:
        return run_previz("verify", *args, timeout=60)

    good = verify(str(signed), "--trust", str(test_ca.ca))
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith(f"trusted  {signed}: trainedAlgorithmicMedia by "
                                  "wan2.1-vace-1.3b")
    assert f"seed 7, {shot_task.steps} steps, take {key[:12]}" in good.stdout
    bad = verify(str(signed), str(tampered), str(unsigned), "--trust", str(test_ca.ca))
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("trusted")
    assert lines[1].startswith(f"INVALID  {tampered}: assertion.bmffHash.mismatch")
    assert lines[2] == f"none     {unsigned}: no content credentials"
    stranger = verify(str(signed), "--trust", str(other_ca.ca))
    assert stranger.returncode == 1 and stranger.stdout.startswith(f"UNTRUSTED {signed}")
    untrusting = verify(str(signed))  # no trust list: the signature is checked, not its signer
    assert untrusting.returncode == 0 and "not checked against a trust list" in untrusting.stdout
    missing = verify(str(tmp_path / "nowhere.mp4"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_a_derived_file_chains_to_its_ingredients(task, test_ca, tmp_path, monkeypatch):
    """A cut is signed with its takes as ingredients, whose own manifests travel inside it."""
    shot_task, key = task
    signing = _signing(test_ca, monkeypatch)
    take = sign_take(_media(tmp_path), signing, task=shot_task, take_key=key,
                     source_type="trainedAlgorithmicMedia", generator_version="3")
    cut = sign_derived(_media(tmp_path, "cut.mp4"), signing, title="SQ020_previz_v001.mp4",
                       source_type="compositeWithTrainedAlgorithmicMedia",
                       ingredients=[Ingredient(take, "SH0010 take 1", "componentOf")],
                       about={"cut": "SQ020_previz_v001"})
    made = verify_file(cut, test_ca.ca.read_text())
    assert made.state == "trusted" and made.ingredients == ("SH0010 take 1",)
    import c2pa

    with c2pa.Reader(str(cut)) as reader:
        store = json.loads(reader.json())
    ingredient = store["manifests"][store["active_manifest"]]["ingredients"][0]
    chained = store["manifests"][ingredient["active_manifest"]]
    recipe = next(a["data"] for a in chained["assertions"] if a["label"] == "org.previz.recipe")
    assert recipe["take_key"] == key  # the take's own credentials, inside the cut's


@pytest.mark.parametrize(("case", "says"), [
    ("cert only", "PREVIZ_C2PA_CERT is set but PREVIZ_C2PA_KEY is not"),
    ("no such key", "PREVIZ_C2PA_KEY="),
    ("another key", "not the private key of the certificate"),
    ("expired", "renew it"),
    ("not pem", "not PEM certificates"),
])
def test_unusable_signing_settings_name_the_variable(case, says, test_ca, tmp_path):
    env = dict(test_ca.env)
    if case == "cert only":
        del env["PREVIZ_C2PA_KEY"]
    elif case == "no such key":
        env["PREVIZ_C2PA_KEY"] = str(tmp_path / "absent.pem")
    elif case == "another key":
        env["PREVIZ_C2PA_KEY"] = str(make_ca(tmp_path / "other").key)
    elif case == "expired":
        env.update(make_ca(tmp_path / "old", expired=True).env)
    elif case == "not pem":
        (tmp_path / "cert.txt").write_text("not a certificate")
        env["PREVIZ_C2PA_CERT"] = str(tmp_path / "cert.txt")
    with pytest.raises(CredentialsError) as refused:
        signing_from_env(env)
    assert says in str(refused.value)
    assert "PRIVATE KEY" not in str(refused.value)


def test_no_settings_means_unsigned():
    assert signing_from_env({}) is None


def test_a_render_with_unusable_settings_stops_before_rendering(tmp_path):
    env = clean_env(PREVIZ_C2PA_CERT=str(tmp_path / "studio.pem"),
                    PREVIZ_C2PA_KEY=str(tmp_path / "studio.key"))
    done = run_previz("render", "storyboards/demo.yaml", "--store", str(tmp_path / "store"),
                      cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"PREVIZ_C2PA_CERT={tmp_path / 'studio.pem'}: no such file — "
                                   "point it at the studio's signing certificate (PEM)")
    assert not (tmp_path / "store").exists()


def test_is_signed(task, test_ca, tmp_path, monkeypatch):
    shot_task, key = task
    plain = _media(tmp_path, "plain.mp4")
    assert not is_signed(plain)
    copy = Path(shutil.copy(plain, tmp_path / "copy.mp4"))
    sign_take(copy, _signing(test_ca, monkeypatch), task=shot_task, take_key=key,
              source_type="trainedAlgorithmicMedia", generator_version="3")
    assert is_signed(copy)


@pytest.mark.slow
def test_every_take_and_cut_of_a_render_verifies_against_the_test_ca(test_ca, tmp_path):
    """A real render (embedded Ray, its workers signing takes with the certificate in their
    environment): takes drawn by the draft (encoded as drawn) and by the synthetic model (frames
    encoded on the worker's node) are signed; the cut, joined by stream copy, is signed again
    with its takes as ingredients; so are the review copy, contact sheet and editorial media."""

    from previz.store import open_store, read_manifest, read_take_record
    from previz.store.takes import fetch_take_media

    board = tmp_path / "board.yaml"
    board.write_text(textwrap.dedent("""\
        project: TEST
        sequence: SQ010
        fps: 24
        resolution: 192x108
        defaults: {model: draft, seed: 1}
        shots:
          - {id: SH0010, duration: 12f, prompt: a lighthouse at dusk}
          - {id: SH0020, duration: 12f, prompt: waves, model: synthetic,
             transition: {type: dissolve, duration: 4f}}
          - {id: SH0030, duration: 12f, prompt: the lamp turns}
    """))
    store_dir = tmp_path / "store"
    summary = render_json(board, store_dir, "--editorial-media", "prores422",
                          env=clean_env(**test_ca.env))
    assert "previz signer" in summary["signed_by"]
    assert "unsigned" not in summary["stderr"]
    store = open_store(str(store_dir))
    trust = test_ca.ca.read_text()
    for shot in summary["shots"]:
        record = read_take_record(store, shot["take"])
        assert "previz signer" in record["credentials"]["signed_by"]
        media = fetch_take_media(store, shot["take"], tmp_path / f"{shot['id']}.mp4")
        made = verify_file(media, trust)
        assert made.state == "trusted", (shot, made)
        assert made.source_type == "algorithmicMedia"  # the draft and the test pattern
        assert made.recipe["take_key"] == shot["take"]
    manifest = read_manifest(store, "TEST", "SQ010", summary["version"])
    assert "previz signer" in manifest["provenance"]["signed_by"]
    assert manifest["provenance"]["unsigned_takes"] == []
    from urllib.parse import unquote, urlparse

    folder = Path(unquote(urlparse(summary["cut"]).path)).parent
    signed = {path.name: verify_file(path, trust) for path in sorted(folder.iterdir())
              if path.suffix in (".mp4", ".mov", ".jpg")}
    takes = {f"SH00{n}0 take 1" for n in (1, 2, 3)}
    cut = signed.pop("SQ010_previz_v001.mp4")
    assert cut.state == "trusted" and cut.source_type == "composite"
    assert {title.rpartition(" (")[0] for title in cut.ingredients} == takes
    for name, made in signed.items():
        assert made.state == "trusted", (name, made)
        if name.endswith(".mov"):  # editorial media: its own shot's take
            assert len(made.ingredients) == 1 and made.ingredients[0].startswith(name[:6])
    assert sum(name.endswith(".mov") for name in signed) == 3
    # `previz verify` on the published cut, and a copy with one byte changed
    tampered = tmp_path / "tampered.mp4"
    data = bytearray((folder / "SQ010_previz_v001.mp4").read_bytes())
    data[data.find(b"mdat") + 100] ^= 0x01
    tampered.write_bytes(bytes(data))
    verified = run_previz("verify", str(folder / "SQ010_previz_v001.mp4"), str(tampered),
                          "--trust", str(test_ca.ca), timeout=60)
    assert verified.returncode == 1
    first, second = verified.stdout.splitlines()
    assert first.startswith("trusted") and "from 3 ingredient(s)" in first
    assert second.startswith(f"INVALID  {tampered}")
