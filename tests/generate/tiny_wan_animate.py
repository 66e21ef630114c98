"""Tiny random-weight Wan 2.2 Animate pipeline (diffusers WanAnimatePipeline), built offline.

The pipeline takes a reference `image` (the character), `pose_video` and `face_video` (lists of
PIL frames), a prompt, and `mode`: "animate" moves the character with the pose and face;
"replace" also takes `background_video` and `mask_video` (PIL lists; white = generate, black =
keep) and puts the character into the background. The transformer reads 36 channels (16 noisy
latents + 4 mask + 16 reference/previous-segment latents), adds VAE latents of the pose video, a
CLIP embedding of `image` (`image_encoder`, `image_processor`) and, through face-adapter
cross-attention after blocks 0, k, 2k... (k = inject_face_latents_blocks), face motion features.

Shape rules (diffusers 0.42.1): `height` and `width` must be multiples of 16 (16x16 works here).
The output has exactly len(pose_video) frames, any count >= 2 (1 fails). It is denoised in
segments of `segment_frame_length` frames (default 77, so pass a small one such as 5; a length
not 4k+1 becomes 4*(L//4)+1 with a warning; it must leave room for the
`prev_segment_conditioning_frames`, 1 or 5, that each later segment starts on: 5 needs 13 or
more). Every video is padded to whole segments by reflection (a 1-frame face, background or mask
video that needs padding fails) or cut, and the output is cut back to len(pose_video);
`callback_on_step_end` runs for every step of every segment, its step index restarting at 0.
Pose, background and mask frames are resized (stretched) to height x width and the reference
image is fitted into it (aspect kept, black fill); face frames are resized to the square
`motion_encoder_size` (512 in the real model, 8 here: the motion encoder needs a power of 2 >= 4
and the pipeline rounds sizes down to the VAE's 8 pixels). Like the real model (added_kv_proj_dim
set), attention takes the tokens before the last 512 as CLIP tokens, so `max_sequence_length` must
stay 512 for the image to reach its own attention branch; shorter runs but splits them wrongly
(here all CLIP tokens then go in as text). CFG is off unless guidance_scale > 1.
"""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import _WAN_TRANSFORMER, _seeded, _t5, _wan_scheduler, _wan_vae, tokenizer

FACE_SIZE = 8  # transformer.config.motion_encoder_size: the face video's side in pixels
CLIP_SIZE = 4


def build_wan_animate(folder: Path) -> Path:
    from diffusers import WanAnimatePipeline, WanAnimateTransformer3DModel
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel

    inner_dim = _WAN_TRANSFORMER["num_attention_heads"] * _WAN_TRANSFORMER["attention_head_dim"]
    transformer = _seeded(lambda: WanAnimateTransformer3DModel(
        in_channels=36, latent_channels=16, num_layers=2, image_dim=8,
        added_kv_proj_dim=inner_dim, motion_encoder_size=FACE_SIZE,
        motion_encoder_channel_sizes={"4": 8, "8": 8}, motion_style_dim=8, motion_dim=4,
        motion_encoder_dim=8, face_encoder_hidden_dim=8, face_encoder_num_heads=2,
        inject_face_latents_blocks=2, **_WAN_TRANSFORMER))
    encoder = _seeded(lambda: CLIPVisionModel(CLIPVisionConfig(
        hidden_size=8, projection_dim=8, num_hidden_layers=2, num_attention_heads=2,
        image_size=CLIP_SIZE, intermediate_size=16, patch_size=1)))
    processor = CLIPImageProcessorPil(crop_size=CLIP_SIZE, size=CLIP_SIZE)
    pipe = WanAnimatePipeline(tokenizer=tokenizer(), text_encoder=_t5(True), vae=_wan_vae(),
                              scheduler=_wan_scheduler(), image_processor=processor,
                              image_encoder=encoder, transformer=transformer)
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {"wan_animate": build_wan_animate}
