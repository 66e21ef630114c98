"""A tiny random-weight ViTPose (transformers' VitPoseForPoseEstimation, 17 COCO keypoints),
saved with its image processor: the pose model a layout of `control: pose` runs, as a studio's
`weights: {pose: .../vitpose-base-simple}` would."""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import _seeded


def build_pose(folder: Path) -> Path:
    from transformers import (
        VitPoseBackboneConfig,
        VitPoseConfig,
        VitPoseForPoseEstimation,
        VitPoseImageProcessor,
    )

    backbone = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[8, 8], hidden_size=16,
                                     num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, out_indices=[2])
    config = VitPoseConfig(backbone_config=backbone, num_labels=17)
    _seeded(lambda: VitPoseForPoseEstimation(config)).save_pretrained(folder)
    VitPoseImageProcessor(size={"height": 64, "width": 48}).save_pretrained(folder)
    return folder


BUILDERS = {"pose": build_pose}
