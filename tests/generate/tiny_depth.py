"""A tiny random-weight Depth Anything (transformers' DepthAnythingForDepthEstimation over a
four-stage DINOv2), saved with its image processor: the depth extractor a layout of
`control: depth` runs, as a studio's `weights: {depth: .../Depth-Anything-V2-Small-hf}` would."""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import _seeded


def build_depth(folder: Path) -> Path:
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessorPil,
    )

    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                            intermediate_size=32, image_size=56, patch_size=14,
                            out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16,
                                 neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=8,
                                 head_hidden_size=4)
    model = _seeded(lambda: DepthAnythingForDepthEstimation(config).eval())
    model.save_pretrained(folder)
    DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=False,
                         ensure_multiple_of=14).save_pretrained(folder)
    return folder


BUILDERS = {"depth": build_depth}
