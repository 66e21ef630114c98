"""The generator protocol, registry, conditioning images and output checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from generate_helpers import make_task, solid
from PIL import Image

from previz.catalog import model_spec
from previz.errors import PrevizError
from previz.generate import (
    GeneratedFrames,
    Generator,
    GeneratorDeclaration,
    GeneratorError,
    GeneratorKind,
    create_generator,
    fit_image,
    images_from_files,
    register_generator,
    registered_generators,
)
from previz.generate.draft import DraftGenerator
from previz.generate.registry import generator_declaration, pixel_neutral_options
from previz.generate.synthetic import SyntheticGenerator
from previz.plan.types import Conditioning


def test_builtin_generators_follow_the_protocol():
    draft = create_generator(model_spec("draft"))
    synthetic = create_generator(model_spec("synthetic"), options={"load_seconds": 0})
    diffusers = create_generator(model_spec("ltx-video"), weights="/nowhere")
    assert isinstance(draft, DraftGenerator) and isinstance(synthetic, SyntheticGenerator)
    for generator in (draft, synthetic, diffusers):
        assert isinstance(generator, Generator)
    assert diffusers.needs.gpus == 1 and diffusers.needs.gpu_memory_gb == 16.0
    assert draft.needs.gpus == 0
    assert {"draft", "synthetic", "diffusers"} <= set(registered_generators())


def test_registering_a_generator(monkeypatch):
    made = []

    def factory(spec, *, weights=None, options=None):
        made.append((spec.name, weights, options))
        return SyntheticGenerator(spec, weights=weights, options=options)

    monkeypatch.setattr("previz.generate.registry._FACTORIES", {})
    register_generator("double", factory)
    spec = dataclasses.replace(model_spec("synthetic"), name="double-1", generator="double")
    generator = create_generator(spec, weights="w", options={"a": 1})
    assert isinstance(generator, SyntheticGenerator)
    assert made == [("double-1", "w", {"a": 1})]
    with pytest.raises(ValueError):
        register_generator("", factory)


def test_each_generator_declares_what_it_is():
    draft, synthetic, diffusers = (generator_declaration(n)
                                   for n in ("draft", "synthetic", "diffusers"))
    assert draft.kind is GeneratorKind.ANIMATIC and not draft.final_quality
    assert draft.encodes_own_output and draft.title_in_pixels and not draft.computes_on_gpu
    assert synthetic.final_quality and synthetic.load_options == {"load_seconds"}
    assert synthetic.stated_seconds({"seconds_per_frame": 0.5}, 10, 4) == 5.0
    assert synthetic.stated_seconds({}, 10, 4) is None  # the catalog's cost then
    assert diffusers.computes_on_gpu and {"cpu_offload", "cache"} <= diffusers.load_options
    # memory savers never change pixels; a cache does
    assert "cpu_offload" in pixel_neutral_options() and "cache" not in pixel_neutral_options()
    with pytest.raises(ValueError, match="not among the declared options"):
        GeneratorDeclaration(version="1", kind=GeneratorKind.VIDEO_MODEL,
                             load_options=frozenset({"x"}))


def test_a_registered_generator_is_planned_by_its_declaration(monkeypatch, tmp_path):
    """No module checks a generator's name: a new generator's declaration alone decides its
    keys (version, pixel-neutral options) and whether it gets deadline stand-ins."""
    from previz import catalog
    from previz.plan import plan_from_storyboard
    from previz.storyboard import load_storyboard

    class Sketch(SyntheticGenerator):
        declaration = GeneratorDeclaration(
            version="7", kind=GeneratorKind.ANIMATIC, options=frozenset({"brush"}),
            pixel_neutral_options=frozenset({"brush"}))

    monkeypatch.setattr("previz.generate.registry._FACTORIES", {})
    register_generator("sketch", Sketch)
    spec = dataclasses.replace(model_spec("synthetic"), name="sketch", generator="sketch")
    monkeypatch.setitem(catalog.CATALOG, "sketch", spec)
    board = tmp_path / "board.yaml"

    def plan(options: str):
        board.write_text("project: P\nsequence: SQ010\ndefaults: {model: sketch, options: "
                         f"{options}}}\nshots:\n  - {{id: SH0010, duration: 12f, prompt: x}}\n")
        return plan_from_storyboard(load_storyboard(board))

    first = plan("{brush: round}")
    assert plan("{brush: flat}").shots[0].selected_take.key == first.shots[0].selected_take.key
    assert first.shots[0].fallback is None and first.shots[0].reduced is None  # an animatic
    monkeypatch.setattr(Sketch, "declaration", dataclasses.replace(Sketch.declaration,
                                                                   version="8"))
    assert plan("{brush: round}").shots[0].selected_take.key != first.shots[0].selected_take.key


def test_unknown_generator_names_the_known_ones():
    spec = dataclasses.replace(model_spec("synthetic"), generator="nonesuch")
    with pytest.raises(PrevizError, match="not registered — known generators: diffusers, draft"):
        create_generator(spec)


def test_images_from_files(tmp_path):
    path = solid(tmp_path / "p.png", (10, 20, 30))
    Image.open(path).convert("L").save(tmp_path / "grey.png")
    image = images_from_files(Conditioning(role="first_image", path=str(path)))
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (10, 20, 30)
    assert images_from_files(Conditioning(role="reference",
                                          path=str(tmp_path / "grey.png"))).mode == "RGB"
    with pytest.raises(GeneratorError, match="only the engine's image source"):
        images_from_files(Conditioning(role="first_image", from_key="abc"))
    with pytest.raises(GeneratorError, match="does not exist"):
        images_from_files(Conditioning(role="first_image", path=str(tmp_path / "no.png")))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(GeneratorError, match="cannot be read"):
        images_from_files(Conditioning(role="first_image", path=str(tmp_path / "bad.png")))


def test_fit_image_covers_and_crops_the_centre():
    wide = np.zeros((50, 100, 3), np.uint8)
    wide[:, :25] = (255, 0, 0)
    wide[:, 25:75] = (0, 255, 0)
    wide[:, 75:] = (0, 0, 255)
    fitted = np.asarray(fit_image(Image.fromarray(wide), 32, 32))
    assert fitted.shape == (32, 32, 3)
    assert fitted[:, 2:30, 1].min() > 200  # only the green middle is left
    assert fit_image(Image.fromarray(wide), 100, 50).size == (100, 50)


def test_generated_frames_are_checked():
    with pytest.raises(GeneratorError, match="uint8 array"):
        GeneratedFrames(frames=np.zeros((2, 4, 4, 3), np.float32), fps=24.0)
    with pytest.raises(GeneratorError, match="uint8 array"):
        GeneratedFrames(frames=[np.zeros((4, 4, 3), np.uint8)], fps=24.0)
    frames = GeneratedFrames(frames=np.zeros((8, 48, 64, 3), np.uint8), fps=24.0)
    with pytest.raises(GeneratorError, match="made 8 frames of 64x48, the task asked for 9"):
        frames.check(make_task("synthetic"))
