"""HunyuanVideo 1.5, text and image to video, on tiny real pipelines (tiny_hunyuan15.py) loaded
from disk through create_generator: frames of the asked size and count, the shot's guidance
through the pipeline's guider, the panel conditioning the image-to-video pipeline."""

from __future__ import annotations

import numpy as np
from generate_helpers import make_task
from PIL import Image

from previz.catalog import model_spec
from previz.plan.types import Conditioning


def test_text_to_video(loaded):
    generator = loaded("hunyuanvideo-1.5", "hunyuan15_t2v")
    task = make_task("hunyuanvideo-1.5", width=48, height=32, num_frames=9, fps=24.0)
    first = generator.generate(task)
    assert first.frames.shape == (9, 32, 48, 3) and first.frames.dtype == np.uint8
    assert np.array_equal(first.frames, generator.generate(task).frames)
    # guidance reaches the model through its guider (the pipeline takes no guidance_scale)
    unguided = generator.generate(task.model_copy(update={"guidance": 1.0}))
    assert generator.pipe.guider.guidance_scale == 1.0
    assert not np.array_equal(first.frames, unguided.frames)
    assert model_spec("hunyuanvideo-1.5").frames.accepts(9)
    assert not model_spec("hunyuanvideo-1.5").frames.accepts(10)


def test_image_to_video_from_a_panel(loaded, tmp_path):
    panel = tmp_path / "panel.png"
    Image.new("RGB", (96, 64), (20, 60, 200)).save(panel)
    generator = loaded("hunyuanvideo-1.5-i2v", "hunyuan15_i2v")
    task = make_task("hunyuanvideo-1.5-i2v", width=48, height=32, num_frames=5, fps=24.0,
                     conditioning=(Conditioning(role="first_image", path=str(panel)),))
    made = generator.generate(task)
    assert made.frames.shape == (5, 32, 48, 3)
    plain = make_task("hunyuanvideo-1.5-i2v", width=48, height=32, num_frames=5, fps=24.0,
                      conditioning=(Conditioning(role="first_image", path=str(tmp_path / "b.png")),))
    Image.new("RGB", (96, 64), (240, 240, 240)).save(tmp_path / "b.png")
    assert not np.array_equal(made.frames, generator.generate(plain).frames)  # the panel counts
