"""Tiny random-weight diffusers video pipelines, built offline (see shared/notes/tiny-diffusers.md).

Each builder seeds torch before every module so the weights are reproducible, puts text
encoders in eval mode, and saves the pipeline with `save_pretrained` so tests load it through
the same `from_pretrained(folder)` path real weights take.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ["a", "the", "an", "of", "in", "on", "at", "to", "and", "with", "into", "from", "over", "under", "as", "is", "are", "his", "her", "their", "its", "old", "keeper", "lighthouse", "white", "beard", "yellow", "raincoat", "climbs", "last", "steps", "glass", "lamp", "room", "top", "storm", "outside", "lantern", "hand", "wipes", "salt", "camera", "slowly", "smoothly", "quickly", "dollies", "pans", "tilts", "in", "out", "left", "right", "up", "down", "shot", "wide", "close", "low", "angle", "high", "lens", "film", "grade", "shallow", "depth", "field", "holds", "still", "locked", "off", "35mm", "teal", "orange", "blurry", "watermark", "text", "rain", "sea", "night"]


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    model = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    model.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                         special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=model, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512)


def _seeded(build):
    import torch

    torch.manual_seed(0)
    module = build()
    return module.eval() if hasattr(module, "eval") else module


def _t5(umt5: bool):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config_class, model_class = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config,
                                                                          T5EncoderModel)
    config = config_class(vocab_size=128, d_model=32, d_ff=37, d_kv=8, num_heads=4,
                          num_layers=2, relative_attention_num_buckets=8, dropout_rate=0.0,
                          pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return _seeded(lambda: model_class(config))


def _wan_vae():
    from diffusers import AutoencoderKLWan

    return _seeded(lambda: AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1],
                                            num_res_blocks=1,
                                            temperal_downsample=[False, True, True]))


_WAN_TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
                        cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                        rope_max_seq_len=32)


def _wan_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=7.0)


def build_wan_t2v(folder: Path, *, expand_timesteps: bool = False) -> Path:
    """Wan 2.1 text-to-video; with expand_timesteps, shaped like Wan 2.2 TI2V (text or image)."""
    from diffusers import WanPipeline, WanTransformer3DModel

    transformer = _seeded(lambda: WanTransformer3DModel(in_channels=16, num_layers=2,
                                                        **_WAN_TRANSFORMER))
    pipe = WanPipeline(tokenizer=tokenizer(), text_encoder=_t5(True), vae=_wan_vae(),
                       scheduler=_wan_scheduler(), transformer=transformer,
                       expand_timesteps=expand_timesteps)
    pipe.save_pretrained(folder)
    return folder


def build_wan22_t2v(folder: Path) -> Path:
    """Wan 2.2 A14B shape: two experts (high and low noise) switching at boundary_ratio."""
    from diffusers import UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    def expert():
        return _seeded(lambda: WanTransformer3DModel(in_channels=16, num_layers=2,
                                                     **_WAN_TRANSFORMER))

    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=3.0)
    pipe = WanPipeline(tokenizer=tokenizer(), text_encoder=_t5(True), vae=_wan_vae(),
                       scheduler=scheduler, transformer=expert(), transformer_2=expert(),
                       boundary_ratio=0.875)
    pipe.save_pretrained(folder)
    return folder


def build_wan_i2v(folder: Path, *, first_last: bool = False) -> Path:
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    size = 4 if first_last else 32
    extra = {"pos_embed_seq_len": 2 * (4 * 4 + 1)} if first_last else {}
    transformer = _seeded(lambda: WanTransformer3DModel(in_channels=36, image_dim=4, num_layers=2,
                                                        **_WAN_TRANSFORMER, **extra))
    encoder = _seeded(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2,
        image_size=size, intermediate_size=16, patch_size=1)))
    processor = CLIPImageProcessor(crop_size=size, size=size)
    pipe = WanImageToVideoPipeline(tokenizer=tokenizer(), text_encoder=_t5(True), vae=_wan_vae(),
                                   scheduler=_wan_scheduler(), image_processor=processor,
                                   image_encoder=encoder, transformer=transformer)
    pipe.save_pretrained(folder)
    return folder


def build_wan_vace(folder: Path) -> Path:
    from diffusers import WanVACEPipeline, WanVACETransformer3DModel

    transformer = _seeded(lambda: WanVACETransformer3DModel(
        in_channels=16, num_layers=3, vace_layers=[0, 2], vace_in_channels=96,
        **_WAN_TRANSFORMER))
    pipe = WanVACEPipeline(tokenizer=tokenizer(), text_encoder=_t5(True), vae=_wan_vae(),
                           scheduler=_wan_scheduler(), transformer=transformer)
    pipe.save_pretrained(folder)
    return folder


def build_ltx(folder: Path) -> Path:
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    transformer = _seeded(lambda: LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=1, caption_channels=32))

    def vae():
        model = AutoencoderKLLTXVideo(
            in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4,
            upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=1,
            patch_size_t=1, encoder_causal=True, decoder_causal=False)
        model.use_framewise_encoding = False
        model.use_framewise_decoding = False
        return model

    pipe = LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_seeded(vae),
                                text_encoder=_t5(False), tokenizer=tokenizer(),
                                transformer=transformer)
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {
    "wan_t2v": build_wan_t2v,
    "wan_ti2v": lambda folder: build_wan_t2v(folder, expand_timesteps=True),
    "wan22_t2v": build_wan22_t2v,
    "wan_i2v": build_wan_i2v,
    "wan_flf2v": lambda folder: build_wan_i2v(folder, first_last=True),
    "wan_vace": build_wan_vace,
    "ltx": build_ltx,
}
