"""A tiny random-weight HunyuanVideo text-to-video pipeline, built offline.

HunyuanVideoPipeline reads the prompt twice: a Llama model (`tokenizer`, `text_encoder`) reads it
inside a chat template whose first `crop_start` = 95 tokens are cropped off the embeddings, and a
CLIP text model (`tokenizer_2`, `text_encoder_2`, at most 77 tokens) gives the pooled embedding.

The tiny Llama tokenizer splits text with Llama 3's own pre-tokenizer pattern and gives every
piece one token (a word-level vocabulary), so the template's prefix is exactly 95 tokens as with
the real tokenizer: the crop removes the template and nothing of the prompt (checked when
building). The tiny CLIP tokenizer is word level too, with CLIP's start and end tokens and its
77-token limit. Module settings follow diffusers' own HunyuanVideo tests.
"""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import WORDS, _seeded

# Llama 3's pre-tokenizer pattern (tokenizer.json of Llama 3 and of HunyuanVideo's text encoder).
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<unk>", "<|start_header_id|>",
                   "<|end_header_id|>", "<|eot_id|>"]
LLAMA_VOCAB = 384
CLIP_VOCAB = 128
CLIP_LENGTH = 77  # CLIP ViT-L/14's model_max_length, which HunyuanVideoPipeline also hard-codes


def llama_tokenizer():
    """Word-level over Llama 3's pre-tokenizer pieces; BOS first, like Llama 3's tokenizer."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    split = pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated", invert=False)
    template = DEFAULT_PROMPT_TEMPLATE["template"]
    for special in _LLAMA_SPECIALS:
        template = template.replace(special, " ")
    pieces = [piece for piece, _ in split.pre_tokenize_str(template)]
    for word in WORDS:
        pieces += [word, " " + word, word.capitalize(), " " + word.capitalize()]
    vocab = {token: i for i, token in enumerate(_LLAMA_SPECIALS)}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    assert len(vocab) <= LLAMA_VOCAB, len(vocab)
    model = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = split
    model.add_special_tokens(_LLAMA_SPECIALS)
    model.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=model, bos_token="<|begin_of_text|>",
                                   eos_token="<|end_of_text|>", pad_token="<|end_of_text|>",
                                   unk_token="<unk>", model_max_length=1024)


def template_prefix_tokens(tokenizer) -> int:
    """How many tokens the default template puts before the prompt (the real Llama: 95)."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    prefix = DEFAULT_PROMPT_TEMPLATE["template"].split("{}")[0]
    return len(tokenizer(prefix)["input_ids"])


def clip_tokenizer(model_max_length: int = CLIP_LENGTH):
    """Word level, lower case, <|startoftext|> ... <|endoftext|>, padded with <|endoftext|>."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "<unk>": 2}
    for word in [*WORDS, ".", ",", "-"]:
        vocab.setdefault(word, len(vocab))
    assert len(vocab) <= CLIP_VOCAB, len(vocab)
    model = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    model.normalizer = normalizers.Lowercase()
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    model.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=model, bos_token="<|startoftext|>",
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>", model_max_length=model_max_length)


def build_hunyuanvideo(folder: Path) -> Path:
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer = llama_tokenizer()
    crop = template_prefix_tokens(tokenizer)
    assert crop == 95, f"the template prefix is {crop} tokens, crop_start is 95"
    llama = LlamaConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16,
                        intermediate_size=37, num_attention_heads=4, num_key_value_heads=4,
                        num_hidden_layers=2, vocab_size=LLAMA_VOCAB, hidden_act="gelu",
                        max_position_embeddings=512)
    clip = CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=8,
                          intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                          vocab_size=CLIP_VOCAB, hidden_act="gelu", projection_dim=32,
                          max_position_embeddings=CLIP_LENGTH)
    transformer = _seeded(lambda: HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10,
        num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1,
        guidance_embeds=True, text_embed_dim=16, pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 4)))
    vae = _seeded(lambda: AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
        layers_per_block=1, act_fn="silu", norm_num_groups=4, scaling_factor=0.476986,
        spatial_compression_ratio=8, temporal_compression_ratio=4, mid_block_add_attention=True))
    pipe = HunyuanVideoPipeline(
        text_encoder=_seeded(lambda: LlamaModel(llama)), tokenizer=tokenizer,
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=_seeded(lambda: CLIPTextModel(clip)), tokenizer_2=clip_tokenizer())
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {"hunyuanvideo": build_hunyuanvideo}
