"""Tiny random-weight CogVideoX pipelines, built offline (configs after diffusers' own tests).

Shaped like the real checkpoints where it matters to previz:
- text to video (CogVideoX-5b): rotary position embeddings, any size that is a multiple of 16
  (VAE 8x, patch 2);
- image to video (CogVideoX-5b-I2V): the first image's latents as extra input channels
  (in_channels 8 > out_channels 4) and learned position embeddings, which tie the model to its
  sample size (16x16 here, 720x480 for the real one) and its text length (max_text_seq_length:
  32 here, 226 for the real one).
"""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import _seeded, _t5, tokenizer

# latent 2x2 -> 16x16 pixels; 49 frames -> 13 latent frames; text padded to 32 tokens
_TRANSFORMER = dict(num_attention_heads=2, attention_head_dim=16, out_channels=4, time_embed_dim=2,
                    text_embed_dim=32, num_layers=1, sample_width=2, sample_height=2,
                    sample_frames=49, patch_size=2, temporal_compression_ratio=4,
                    max_text_seq_length=32, use_rotary_positional_embeddings=True)


def _vae():
    from diffusers import AutoencoderKLCogVideoX

    return _seeded(lambda: AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
        latent_channels=4, layers_per_block=1, norm_num_groups=2,
        temporal_compression_ratio=4))


def build_cogvideox(folder: Path, *, image: bool = False) -> Path:
    from diffusers import (
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    extra = dict(in_channels=8, use_learned_positional_embeddings=True) if image else dict(
        in_channels=4)
    transformer = _seeded(lambda: CogVideoXTransformer3DModel(**_TRANSFORMER, **extra))
    pipeline_class = CogVideoXImageToVideoPipeline if image else CogVideoXPipeline
    pipe = pipeline_class(tokenizer=tokenizer(), text_encoder=_t5(False), vae=_vae(),
                          transformer=transformer, scheduler=CogVideoXDDIMScheduler())
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {
    "cogvideox_t2v": build_cogvideox,
    "cogvideox_i2v": lambda folder: build_cogvideox(folder, image=True),
}
