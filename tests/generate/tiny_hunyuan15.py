"""Tiny random-weight HunyuanVideo-1.5 pipelines (text-to-video and image-to-video), built offline.

HunyuanVideo15Pipeline reads the prompt twice: a Qwen2.5-VL text model (`tokenizer`,
`text_encoder`) reads it inside a chat template whose first 108 tokens are cropped off the
embeddings (the pipeline hard-codes the crop and pads to 1000 + 108 tokens), and a ByT5 model
(`tokenizer_2`, `text_encoder_2`, 256 bytes) reads only the text quoted in the prompt. The
transformer's input is the noisy latents, a condition latent and a mask (2 x 4 + 1 channels);
text-to-video fills the condition with zeros, image-to-video puts the encoded image in the first
latent frame and adds SigLIP features of the image (`image_encoder`, `feature_extractor`).

The tiny Qwen tokenizer splits text with Qwen2's own pre-tokenizer pattern and gives every piece
one token (a word-level vocabulary), so the template's prefix is exactly 108 tokens as with the
real tokenizer (checked when building). ByT5's tokenizer needs no files. Shaped like the real
checkpoint where it matters: the VAE compresses 16x in space and 4x in time (frames 4k+1, sides in
multiples of 16), and SigLIP gives 729 image tokens. `target_size` 48 (640 for 480p) picks the
size: by default 48 wide x 32 high for text-to-video, and always, for image-to-video, a bucket near
the image's aspect (the image is resized and center-cropped to it). Guidance is the `guider`
component (CFG 6.0 here), not a call argument. Other module settings follow diffusers' own
HunyuanVideo-1.5 tests.
"""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import WORDS, _seeded

# Qwen2's pre-tokenizer pattern (tokenizer.json of Qwen2 / Qwen2.5-VL).
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
# Qwen2.5-VL's chat template, for string contents only.
_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
QWEN_VOCAB = 512
CROP_START = 108  # HunyuanVideo15Pipeline.prompt_template_encode_start_idx
LATENT_CHANNELS = 4
TARGET_SIZE = 48


def _system_message() -> str:
    import inspect

    from diffusers import HunyuanVideo15Pipeline

    signature = inspect.signature(HunyuanVideo15Pipeline._get_mllm_prompt_embeds)
    return signature.parameters["system_message"].default


def qwen_tokenizer():
    """Word-level over Qwen2's pre-tokenizer pieces, with Qwen's chat template; no BOS."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    split = pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False)
    text = f"system\n{_system_message()} \n user\n assistant\n"
    pieces = [piece for piece, _ in split.pre_tokenize_str(text)]
    for word in [*WORDS, ".", ","]:
        pieces += [word, " " + word, word.capitalize(), " " + word.capitalize()]
    vocab = {token: i for i, token in enumerate(_QWEN_SPECIALS)}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    assert len(vocab) <= QWEN_VOCAB, len(vocab)
    model = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = split
    model.add_special_tokens(_QWEN_SPECIALS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=model, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token="<unk>",
                                        model_max_length=32768)
    tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer


def template_prefix_tokens(tokenizer) -> int:
    """How many tokens the chat template puts before the prompt (the real Qwen2.5-VL: 108)."""
    marker = "lighthouse"
    chat = [{"role": "system", "content": _system_message()}, {"role": "user", "content": marker}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]
    return ids.index(tokenizer.convert_tokens_to_ids(marker))


def _components(task_type: str) -> dict:
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15Transformer3DModel,
    )
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import (
        ByT5Tokenizer,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        T5Config,
        T5EncoderModel,
    )

    tokenizer = qwen_tokenizer()
    crop = template_prefix_tokens(tokenizer)
    assert crop == CROP_START, f"the template prefix is {crop} tokens, the crop is {CROP_START}"
    # 3 layers: the pipeline reads hidden_states[-3], so 2 would give the bare embeddings
    qwen = Qwen2_5_VLTextConfig(vocab_size=QWEN_VOCAB, hidden_size=16, intermediate_size=16,
                                num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
                                rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default",
                                              "type": "default"},
                                rope_theta=1000000.0, bos_token_id=0, pad_token_id=0,
                                eos_token_id=2)
    byt5 = T5Config(vocab_size=384, d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
                    relative_attention_num_buckets=8, dropout_rate=0.0, pad_token_id=0,
                    eos_token_id=1, decoder_start_token_id=0)
    transformer = _seeded(lambda: HunyuanVideo15Transformer3DModel(
        in_channels=2 * LATENT_CHANNELS + 1, out_channels=LATENT_CHANNELS, num_attention_heads=2,
        attention_head_dim=8, num_layers=1, num_refiner_layers=1, mlp_ratio=2.0, patch_size=1,
        patch_size_t=1, text_embed_dim=16, text_embed_2_dim=32, image_embed_dim=12,
        rope_axes_dim=(2, 2, 4), target_size=TARGET_SIZE, task_type=task_type))
    vae = _seeded(lambda: AutoencoderKLHunyuanVideo15(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
        block_out_channels=(8, 8, 8, 8), layers_per_block=1, spatial_compression_ratio=16,
        temporal_compression_ratio=4, downsample_match_channel=False,
        upsample_match_channel=False))
    return dict(text_encoder=_seeded(lambda: Qwen2_5_VLTextModel(qwen)), tokenizer=tokenizer,
                transformer=transformer, vae=vae,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                text_encoder_2=_seeded(lambda: T5EncoderModel(byt5)),
                tokenizer_2=ByT5Tokenizer(), guider=ClassifierFreeGuidance(guidance_scale=6.0))


def build_t2v(folder: Path) -> Path:
    from diffusers import HunyuanVideo15Pipeline

    HunyuanVideo15Pipeline(**_components("t2v")).save_pretrained(folder)
    return folder


def build_i2v(folder: Path) -> Path:
    """Adds SigLIP: 27x27 pixels in 1-pixel patches make 729 image tokens, as 384/14 does."""
    from diffusers import HunyuanVideo15ImageToVideoPipeline
    from transformers import SiglipImageProcessorPil, SiglipVisionConfig, SiglipVisionModel

    siglip = SiglipVisionConfig(hidden_size=12, intermediate_size=16, num_hidden_layers=1,
                                num_attention_heads=2, image_size=27, patch_size=1)
    processor = SiglipImageProcessorPil(size={"height": 27, "width": 27})
    pipe = HunyuanVideo15ImageToVideoPipeline(
        **_components("i2v"), image_encoder=_seeded(lambda: SiglipVisionModel(siglip)),
        feature_extractor=processor)
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {"hunyuan15_t2v": build_t2v, "hunyuan15_i2v": build_i2v}
