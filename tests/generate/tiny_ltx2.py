"""A tiny random-weight LTX-2 text-to-video+audio pipeline (`LTX2Pipeline`), built offline.

The transformer and text connectors follow diffusers' own LTX-2 tests; the text encoder (a Gemma 3
model whose hidden states from every layer feed the connectors) is built from a tiny config
instead of downloaded. Shaped like the real checkpoint where it matters to previz:
- video VAE: 32x spatial and 8x temporal compression (patch 4, three 2x stages), so frames come
  in 8k+1 (others are rounded down) and height/width in multiples of 32 (the pipeline checks);
- audio: 16 kHz mels with hop 160 (100 mel frames a second) and 4x latent compression, made into
  stereo 24 kHz audio (`vocoder.config.output_sampling_rate`) by a vocoder that upsamples 240x.
The prompt enhancer, its processor and the duration head are left out (None).
"""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import _seeded, tokenizer

TEXT_HIDDEN = 32  # Gemma 3 hidden size = the connectors' width (4 heads x 8)
TEXT_LAYERS = 2


def _gemma3():
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    text = dict(vocab_size=128, hidden_size=TEXT_HIDDEN, intermediate_size=37,
                num_hidden_layers=TEXT_LAYERS, num_attention_heads=2, num_key_value_heads=1,
                head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                max_position_embeddings=512, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    vision = dict(hidden_size=16, intermediate_size=37, num_hidden_layers=1,
                  num_attention_heads=2, image_size=8, patch_size=2)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          boi_token_index=125, eoi_token_index=126, image_token_index=127)
    return _seeded(lambda: Gemma3ForConditionalGeneration(config))


def _vae():
    from diffusers import AutoencoderKLLTX2Video

    def build():
        model = AutoencoderKLLTX2Video(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True,) * 4,
            decoder_spatio_temporal_scaling=(True,) * 3, decoder_inject_noise=(False,) * 4,
            upsample_residual=(False,) * 3, upsample_factor=(1, 1, 1),
            timestep_conditioning=False, patch_size=4, patch_size_t=1, encoder_causal=True,
            decoder_causal=False, decoder_spatial_padding_mode="zeros",
            spatial_compression_ratio=32, temporal_compression_ratio=8)
        model.use_framewise_encoding = False
        model.use_framewise_decoding = False
        return model

    return _seeded(build)


def build_ltx2(folder: Path) -> Path:
    from diffusers import (
        AutoencoderKLLTX2Audio,
        FlowMatchEulerDiscreteScheduler,
        LTX2Pipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    transformer = _seeded(lambda: LTX2VideoTransformer3DModel(
        in_channels=4, out_channels=4, patch_size=1, patch_size_t=1, num_attention_heads=2,
        attention_head_dim=8, cross_attention_dim=16, audio_in_channels=8, audio_out_channels=8,
        audio_num_attention_heads=2, audio_attention_head_dim=4, audio_cross_attention_dim=8,
        num_layers=2, qk_norm="rms_norm_across_heads", caption_channels=TEXT_HIDDEN,
        rope_double_precision=False, rope_type="split"))
    connectors = _seeded(lambda: LTX2TextConnectors(
        caption_channels=TEXT_HIDDEN, text_proj_in_factor=TEXT_LAYERS + 1,
        video_connector_num_attention_heads=4, video_connector_attention_head_dim=8,
        video_connector_num_layers=1, video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1, audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32, rope_double_precision=False, rope_type="split"))
    # audio latents: 2 channels x 16 / 4 mel bins, packed to 8 features (the transformer's audio
    # channels; the audio VAE's base_channels sizes its latent mean/std to the same 8, as 128 does
    # for the real one)
    audio_vae = _seeded(lambda: AutoencoderKLLTX2Audio(
        base_channels=8, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1,
        attn_resolutions=None, in_channels=2, resolution=32, latent_channels=2,
        norm_type="pixel", causality_axis="height", dropout=0.0, mid_block_add_attention=False,
        sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=16))
    vocoder = _seeded(lambda: LTX2Vocoder(
        in_channels=2 * 16, hidden_channels=64, out_channels=2,
        upsample_kernel_sizes=[16, 15, 8, 4, 4], upsample_factors=[6, 5, 2, 2, 2],
        resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]], output_sampling_rate=24000))
    pipe = LTX2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(),
                        audio_vae=audio_vae, text_encoder=_gemma3(), tokenizer=tokenizer(),
                        connectors=connectors, transformer=transformer, vocoder=vocoder)
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {"ltx2": build_ltx2}
