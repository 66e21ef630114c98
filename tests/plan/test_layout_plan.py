"""`layout:` and `mask:` in the plan: the model variant they need, what reaches the take key
(so changing a layout, its control or a mask re-renders exactly the shots that use it), the
animatic a layout may be drawn from, and the located errors for bad ones."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_compile import compile_error, compile_text

from previz.engine.dispatch import work_graph
from previz.media.encode import encode_take

HEAD = """\
project: P
sequence: SQ010
fps: 24
defaults: {model: wan, seed: 7, size: 832x480}
shots:
  - {id: SH0010, duration: 2s, prompt: the lighthouse}
"""


def video(path, seconds: float, colour=(90, 90, 90), fps: int = 24, size=(160, 96)):
    frames = np.full((round(seconds * fps), size[1], size[0], 3), colour, np.uint8)
    encode_take(frames, fps, path, width=size[0], height=size[1])


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "layouts").mkdir()
    video(tmp_path / "layouts" / "greybox.mp4", 3.0)
    video(tmp_path / "layouts" / "short.mp4", 1.0)
    video(tmp_path / "layouts" / "other.mp4", 3.0, colour=(20, 20, 20))
    video(tmp_path / "layouts" / "mask.mp4", 3.0, colour=(255, 255, 255), size=(208, 120))
    Image.new("RGB", (832, 480), (255, 255, 255)).save(tmp_path / "layouts" / "sky.png")
    Image.new("RGB", (400, 400), (255, 255, 255)).save(tmp_path / "layouts" / "square.png")
    (tmp_path / "layouts" / "broken.mp4").write_bytes(b"not a video at all" * 100)
    return tmp_path


def shot(text: str) -> str:
    return HEAD + f"  - {{id: SH0020, duration: 2s, prompt: the keeper, {text}}}\n"


def conditioning(plan, role):
    return [c for c in plan.shots[1].selected_take.final_task.conditioning if c.role == role]


def test_a_layout_steers_vace_and_its_file_control_and_strength_are_in_the_key(folder):
    plan = compile_text(folder, shot("layout: layouts/greybox.mp4"))
    assert plan.shots[1].model == "wan2.1-vace-1.3b"  # the family's variant that takes one
    [layout] = conditioning(plan, "control_video")
    assert (layout.control, layout.strength, layout.video) == ("edges", 1.0, True)
    key = plan.shots[1].selected_take.key
    variants = {
        "other file": "layout: layouts/other.mp4",
        "gray": "layout: {source: layouts/greybox.mp4, control: gray}",
        "strength": "layout: {source: layouts/greybox.mp4, strength: 0.5}",
    }
    for name, text in variants.items():
        changed = compile_text(folder, shot(text))
        assert changed.shots[1].selected_take.key != key, name
        # Exactly the shots that use it: the other shot's take is the same.
        assert changed.shots[0].selected_take.key == plan.shots[0].selected_take.key
    # The file's content, not its name: the same bytes under another name, the same take.
    (folder / "layouts" / "copy.mp4").write_bytes((folder / "layouts/greybox.mp4").read_bytes())
    assert compile_text(folder, shot("layout: layouts/copy.mp4")).shots[1].selected_take.key \
        == key


def test_a_layout_of_control_video_is_restyled_video_to_video(folder):
    plan = compile_text(folder, shot("layout: {source: layouts/greybox.mp4, control: video}"))
    assert plan.shots[1].model == "wan2.1-t2v-1.3b"
    [source] = conditioning(plan, "source_video")
    assert source.control == "video"


def test_an_animatic_layout_waits_for_the_shots_own_draft(folder):
    plan = compile_text(folder, shot("layout: animatic"))
    draft = plan.shots[1].fallback
    task = plan.shots[1].selected_take.final_task
    [layout] = conditioning(plan, "control_video")
    assert layout.from_key == draft.key and task.depends_on == draft.key
    assert draft.key in {take.key for take in plan.needed_takes()}
    wanted = {take.key for take in plan.takes()}
    graph = work_graph(plan, set(), wanted)
    assert graph.states[draft.final_task.key].status == "pending"
    assert [s.key for s in graph.ready() if s.key == task.key] == []  # waits for the draft


def test_a_still_and_a_mask_make_a_cinemagraph_on_vace(folder):
    plan = compile_text(folder, shot("image: layouts/sky.png, mask: layouts/sky.png"))
    assert plan.shots[1].model == "wan2.1-vace-1.3b"
    [mask] = conditioning(plan, "mask")
    assert mask.video is False and mask.sha256
    changed = compile_text(folder, shot("image: layouts/sky.png, mask: layouts/mask.mp4"))
    assert conditioning(changed, "mask")[0].video is True
    assert changed.shots[1].selected_take.key != plan.shots[1].selected_take.key


@pytest.mark.parametrize("text, message", [
    ("layout: layouts/short.mp4",
     "shots[1].layout: 'layouts/short.mp4' is 1.00 s and the shot 2.00 s — frame i of the "
     "shot is drawn from its frame at the same time; export it as long as the shot, or "
     "shorten the shot"),
    ("layout: layouts/broken.mp4", "shots[1].layout.source: 'layouts/broken.mp4' is not a "
                                   "decodable video"),
    ("layout: layouts/sky.png", "is not a video file — use one of .avi, .m4v, .mkv, .mov"),
    ("mask: layouts/sky.png", "shots[1].mask: 'layouts/sky.png' masks nothing — give image: "
                              "(a still: only the white region moves, a cinemagraph)"),
    ("layout: layouts/greybox.mp4, mask: layouts/sky.png",
     "shots[1].mask: 'layouts/sky.png' with a layout of control: edges — a model takes one "
     "video"),
    ("image: layouts/sky.png, mask: layouts/square.png",
     "shots[1].mask: 'layouts/square.png' is 400x400, not the shot's aspect (832x480)"),
    ("layout: layouts/greybox.mp4, model: hunyuanvideo",
     "shots[1] (SH0020): model 'hunyuanvideo' cannot be conditioned on control_video, which "
     "this shot needs (layout: with control: edges) — use a model that can, such as "
     "wan2.1-vace-1.3b"),
    ("layout: animatic, continue: SH0010",
     "shots[1].layout: animatic with continue: — a shot's task waits on one take"),
])
def test_bad_layouts_and_masks_are_located_errors(folder, text, message):
    assert message in compile_error(folder, shot(text))


def test_a_depth_layout_needs_the_depth_model_its_weights_name(folder, tiny_weights):
    message = compile_error(folder, shot("layout: {source: layouts/greybox.mp4, control: depth}"))
    assert ("shots[1].layout: control: depth needs a depth model on the workers, and the "
            "storyboard names none — add weights: {depth: ") in message
    message = compile_error(folder, shot("layout: {source: layouts/greybox.mp4, control: pose}"))
    assert ("shots[1].layout: control: pose needs a pose model on the workers, and the "
            "storyboard names none — add weights: {pose: /mnt/models/vitpose-base-simple} ("
            ) in message
    text = shot("layout: {source: layouts/greybox.mp4, control: depth}").replace(
        "shots:", f"weights: {{depth: {tiny_weights('depth')}}}\nshots:")
    plan = compile_text(folder, text)
    [layout] = conditioning(plan, "control_video")
    assert layout.control == "depth" and layout.extractor == str(tiny_weights("depth"))
    edges = compile_text(folder, shot("layout: layouts/greybox.mp4"))
    assert plan.shots[1].selected_take.key != edges.shots[1].selected_take.key


PERFORMER = """\
characters:
  KEEPER: {description: an old keeper, reference: layouts/sky.png}
  MARA: {description: a girl}
"""


def performed(text: str, model: str = "wan2.2-animate") -> str:
    board = HEAD.replace("shots:", PERFORMER + "shots:")
    return board + (f"  - {{id: SH0020, duration: 2s, prompt: the keeper dances, model: {model}, "
                    f"performance: {{{text}}}}}\n")


def test_a_performance_drives_its_characters_reference_on_wan_animate(folder):
    plan = compile_text(folder, performed(
        "character: KEEPER, pose: layouts/greybox.mp4, face: layouts/other.mp4"))
    shot = plan.shots[1]
    assert shot.model == "wan2.2-animate-14b"
    task = shot.selected_take.final_task
    assert [c.role for c in task.conditioning] == ["character", "pose_video", "face_video"]
    assert task.conditioning[0].control == "animate" and task.conditioning[0].name == "KEEPER"
    assert task.fps == 30.0 and task.num_frames == 60  # its own rate, any count of frames
    replaced = compile_text(folder, performed(
        "character: KEEPER, pose: layouts/greybox.mp4, face: layouts/other.mp4, mode: replace, "
        "background: layouts/other.mp4, mask: layouts/greybox.mp4"))
    assert replaced.shots[1].selected_take.key != shot.selected_take.key
    assert [c.role for c in replaced.shots[1].selected_take.final_task.conditioning][-2:] == [
        "background_video", "mask"]


def test_a_recorded_performance_is_read_by_the_pose_model(folder, tiny_weights):
    text = performed("character: KEEPER, video: layouts/greybox.mp4, mode: replace").replace(
        "shots:", f"weights: {{pose: {tiny_weights('pose')}}}\nshots:")
    task = compile_text(folder, text).shots[1].selected_take.final_task
    assert [(c.role, c.control) for c in task.conditioning] == [
        ("character", "replace"), ("pose_video", "pose"), ("face_video", "face"),
        ("background_video", "plate"), ("mask", "performer")]
    assert {c.sha256 for c in task.conditioning[1:]} == {task.conditioning[1].sha256}
    assert task.conditioning[1].extractor == str(tiny_weights("pose"))
    message = compile_error(folder, performed("character: KEEPER, video: layouts/greybox.mp4"))
    assert ("shots[1].performance.video: its pose and face are found by a pose model on the "
            "workers, and the storyboard names none — add weights: {pose: ") in message


@pytest.mark.parametrize("text, model, message", [
    ("character: KEEPER, video: layouts/greybox.mp4, pose: layouts/greybox.mp4",
     "wan2.2-animate", "give the performance as video: (the recording"),
    ("character: MARA, pose: layouts/greybox.mp4, face: layouts/other.mp4", "wan2.2-animate",
     "shots[1].performance.character: MARA has no reference image, and a performance animates "
     "one"),
    ("character: KEPER, pose: layouts/greybox.mp4, face: layouts/other.mp4", "wan2.2-animate",
     "shots[1].performance.character: 'KEPER' is not a character of the storyboard — did you "
     "mean 'KEEPER'?"),
    ("character: KEEPER, pose: layouts/greybox.mp4, face: layouts/other.mp4, mode: replace",
     "wan2.2-animate", "mode: replace needs background: and mask:"),
    ("character: KEEPER, pose: layouts/short.mp4, face: layouts/other.mp4", "wan2.2-animate",
     "shots[1].performance.pose: 'layouts/short.mp4' is 1.00 s and the shot 2.00 s"),
    ("character: KEEPER, pose: layouts/broken.mp4, face: layouts/other.mp4", "wan2.2-animate",
     "shots[1].performance.pose: 'layouts/broken.mp4' is not a decodable video"),
    ("character: KEEPER, pose: layouts/greybox.mp4, face: layouts/other.mp4", "wan",
     "model 'wan' cannot be conditioned on performance, which this shot needs (performance:) "
     "— use a model that can, such as wan2.2-animate-14b"),
])
def test_bad_performances_are_located_errors(folder, text, model, message):
    assert message in compile_error(folder, performed(text, model))
