"""Tiny random-weight SkyReels-V2 diffusion forcing and Stable Video Diffusion pipelines, built
offline and saved with `save_pretrained` (configs after diffusers' own fast tests; see
shared/notes/tiny-diffusers.md).

SkyReels-V2 is Wan-shaped: the same tokenizer, UMT5 text encoder and Wan VAE as the Wan tiny
pipelines, a SkyReelsV2Transformer3DModel with the tiny Wan transformer's settings and the flow
UniPC scheduler the published weights ship with. SVD has no text side: a tiny spatio-temporal
UNet, temporal-decoder VAE and CLIP image encoder, with the published Euler (v-prediction,
Karras) scheduler settings. (Channels stay multiples of 32, the UNet's and VAE's group-norm
size, and the CLIP encoder takes 224x224: SVD resizes a PIL first image to that itself.)
"""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import _WAN_TRANSFORMER, _seeded, _t5, _wan_vae, tokenizer


def build_skyreels_df(folder: Path) -> Path:
    from diffusers import (
        SkyReelsV2DiffusionForcingPipeline,
        SkyReelsV2Transformer3DModel,
        UniPCMultistepScheduler,
    )

    transformer = _seeded(lambda: SkyReelsV2Transformer3DModel(in_channels=16, num_layers=2,
                                                               **_WAN_TRANSFORMER))
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=8.0)
    pipe = SkyReelsV2DiffusionForcingPipeline(tokenizer=tokenizer(), text_encoder=_t5(True),
                                              vae=_wan_vae(), scheduler=scheduler,
                                              transformer=transformer)
    pipe.save_pretrained(folder)
    return folder


def build_svd(folder: Path) -> Path:
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = _seeded(lambda: UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=8,
        out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal",
                                          "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=2, projection_class_embeddings_input_dim=24,
        addition_time_embed_dim=8, num_frames=4))
    vae = _seeded(lambda: AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 32], in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"]))
    encoder = _seeded(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=8, projection_dim=32, num_hidden_layers=2, num_attention_heads=2,
        image_size=224, intermediate_size=16, patch_size=32)))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        interpolation_type="linear", num_train_timesteps=1000, prediction_type="v_prediction",
        sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
        timestep_type="continuous", use_karras_sigmas=True)
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet,
                                        scheduler=scheduler,
                                        feature_extractor=CLIPImageProcessor(crop_size=32,
                                                                             size=32))
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {
    "skyreels_df": build_skyreels_df,
    "svd": build_svd,
}
