"""The diffusers generator: the catalog's video models (Wan, LTX-Video, CogVideoX, HunyuanVideo,
SkyReels-V2, Stable Video Diffusion) behind one generator.

torch and diffusers are imported only inside `load` and `generate`, so creating the generator
(and importing this module) stays cheap.

A ShotTask becomes one pipeline call: the assembled prompt (checked against the text encoder's
length — cut with a warning, never silently), negative prompt, size, frame count, steps,
guidance, a torch.Generator seeded with the task's seed, conditioning images as PIL images, and a
step callback for progress. How each family takes its images:

  Wan I2V / FLF2V   image=first, last_image=last
  Wan VACE          reference_images=[...]; first/last frames through video + mask
  LTX condition     conditions=[LTXVideoCondition(image, frame_index=0 / last)]
  CogVideoX I2V     image=first
  SkyReels-V2 DF    text alone, or its image-to-video sibling with image / last_image;
                    past base_num_frames, windows overlapping by overlap_history frames
  Wan 2.2 TI2V      text alone, or WanImageToVideoPipeline on the same weights for a first image
  SVD               image=first (no prompt: noted in the record)

Options (constructor `options`; per-call ones may also come from `task.options`):
  load-time: device (cpu: the plan places the shot on CPU workers, and it runs there),
    allow_cpu (run on a worker's CPU wherever placed), dtype, revision (of hub weights),
    cpu_offload, group_offload (true, "block" or "leaf"), vae_tiling, cache
    ("first_block[:threshold]", "taylorseer[:interval]" (TaylorSeer Lite), "magcache[:threshold]"
    with mag_ratios="r1,r2,..."), compile (of the repeated transformer blocks), attention_backend;
  per call: max_sequence_length, and any keyword the pipeline's __call__ accepts that previz does
    not set itself (guidance_scale_2, conditioning_scale, decode_timestep, motion_bucket_id ...).
"""

from __future__ import annotations

import gc
import inspect
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from previz.catalog import CATALOG, PLACEMENT_OPTIONS, Ability
from previz.generate.errors import (
    GeneratorError,
    GeneratorLoadError,
    GeneratorNeedsGpu,
    GeneratorOutOfMemory,
)
from previz.generate.prompts import assemble_prompt
from previz.generate.types import (
    GeneratedFrames,
    GeneratorDeclaration,
    GeneratorKind,
    GeneratorNeeds,
    ImageSource,
    ProgressCallback,
    fit_image,
    images_from_files,
)
from previz.plan.types import Conditioning

if TYPE_CHECKING:
    from PIL import Image

    from previz.catalog import ModelSpec
    from previz.plan.types import ShotTask

__all__ = ["DiffusersGenerator", "COMPATIBLE_PIPELINES", "IMAGE_SIBLINGS"]

# Weights saved as one pipeline class that load into another (same components).
COMPATIBLE_PIPELINES: dict[str, frozenset[str]] = {
    "LTXConditionPipeline": frozenset({"LTXPipeline", "LTXImageToVideoPipeline"}),
    "LTXImageToVideoPipeline": frozenset({"LTXPipeline", "LTXConditionPipeline"}),
    "LTXPipeline": frozenset({"LTXImageToVideoPipeline", "LTXConditionPipeline"}),
    "SkyReelsV2DiffusionForcingPipeline": frozenset({
        "SkyReelsV2DiffusionForcingImageToVideoPipeline"}),
}
# A text pipeline whose weights also do image-to-video through a sibling class (from_pipe).
IMAGE_SIBLINGS: dict[str, str] = {
    "WanPipeline": "WanImageToVideoPipeline",
    "SkyReelsV2DiffusionForcingPipeline": "SkyReelsV2DiffusionForcingImageToVideoPipeline",
}
# A text pipeline whose weights also do video-to-video (a layout's own pictures, restyled).
VIDEO_SIBLINGS: dict[str, str] = {"WanPipeline": "WanVideoToVideoPipeline"}
# Video-to-video at a layout's strength 1 is generated again from 60% of the way to noise: its
# staging and camera hold, its surfaces follow the prompt.
SOURCE_HOLD = 0.6
# Image-to-video pipelines that hand the transformer the image's latents as extra input channels
# (in_channels > out_channels), which is how I2V weights differ from T2V weights of one lineage.
# A last frame there takes weights trained for it (first-and-last-frame: pos_embed_seq_len set).
_IMAGE_CHANNEL_PIPELINES = frozenset({"WanImageToVideoPipeline", "CogVideoXImageToVideoPipeline"})
# ... and lineages whose transformer takes condition channels for text-to-video too (its
# channels say nothing of the variant there).
_CONDITION_CHANNEL_PIPELINES = frozenset({"HunyuanVideo15Pipeline",
                                          "HunyuanVideo15ImageToVideoPipeline",
                                          "WanAnimatePipeline"})
# Markers that tell apart variants saved under one pipeline class (Wan 2.1, Wan 2.2 A14B and
# TI2V, FLF2V): marker -> how the weights read (without it, with it).
_VARIANT_WORDS: dict[str, tuple[str, str]] = {
    "two_experts": ("one transformer", "two experts (Wan 2.2 A14B)"),
    "expand_timesteps": ("no expand_timesteps", "expand_timesteps (Wan 2.2 TI2V)"),
    "first_last_frame": ("no first-and-last-frame position embedding",
                         "a first-and-last-frame position embedding (FLF2V)"),
    "image_channels": ("text-to-video input channels", "image-to-video input channels"),
}
_LOAD_OPTIONS = frozenset({"device", "allow_cpu", "dtype", "cpu_offload", "group_offload",
                           "vae_tiling", "cache", "compile", "attention_backend", "mag_ratios",
                           "revision"})
# Call arguments previz sets itself; options may not override them.
_MANAGED = frozenset({
    "prompt", "negative_prompt", "height", "width", "num_frames", "num_inference_steps",
    "guidance_scale", "generator", "output_type", "return_dict", "callback_on_step_end",
    "callback_on_step_end_tensor_inputs", "image", "last_image", "video", "mask",
    "reference_images", "conditions", "latents", "prompt_embeds", "negative_prompt_embeds",
    "frame_rate", "fps", "min_guidance_scale", "max_guidance_scale", "max_sequence_length",
})
# Frames two SkyReels-V2 windows share in a long video (diffusers recommends 17 or 37).
_OVERLAP_HISTORY = 17
# Long-video pipelines that fail (IndexError, diffusers 0.42) on a last window shorter than
# base_num_frames: previz generates whole windows and keeps the frames asked for.
_WHOLE_WINDOWS_ONLY = frozenset({"SkyReelsV2DiffusionForcingImageToVideoPipeline"})
_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
           "float32": "float32", "fp32": "float32"}


class DiffusersGenerator:
    """One diffusers video pipeline, loaded once on one device, generating many tasks."""

    # Any other option is a keyword of the pipeline's __call__ (see the module's docstring).
    declaration = GeneratorDeclaration(
        version="1", kind=GeneratorKind.VIDEO_MODEL,
        options=_LOAD_OPTIONS | {"max_sequence_length"}, load_options=_LOAD_OPTIONS,
        pixel_neutral_options=frozenset({"device", "allow_cpu", "cpu_offload", "group_offload",
                                         "vae_tiling", "compile", "attention_backend"}),
        computes_on_gpu=True, needs_process_group=True,
    )

    def __init__(self, spec: ModelSpec, *, weights: str | None = None,
                 options: dict[str, Any] | None = None):
        if not spec.pipeline:
            raise GeneratorLoadError(f"model {spec.name!r} names no diffusers pipeline class in "
                                     "the catalog")
        self.spec = spec
        self.weights = weights or spec.repo
        self.options = dict(options or {})
        # a storyboard may pin its weights' revision (ShotTask.revision): options["revision"]
        self.revision = self.options.get("revision") or spec.revision
        self.pipe: Any = None
        self.device: str | None = None
        self.dtype: Any = None
        self.applied: dict[str, Any] = {}
        self.load_warnings: list[str] = []
        self.load_seconds = 0.0
        self._siblings: dict[str, Any] = {}

    @property
    def needs(self) -> GeneratorNeeds:
        return GeneratorNeeds(gpus=self.spec.gpus, gpu_memory_gb=self.spec.gpu_memory_gb)

    # loading

    def load(self, device: str = "cpu") -> None:
        """1. refuse a GPU model on a CPU-only worker unless allowed; 2. check the weights are
        this model's (model_index.json, and for a folder the transformer's config.json) before
        loading anything; 3. load in bf16 on a GPU, fp32 on a CPU; 4. place it on the device and
        apply memory and speed options."""
        started = time.monotonic()
        if self.pipe is not None:
            return
        self.applied, self.load_warnings = {}, []
        self._check_device(device)
        location, local = self._check_weights()
        import diffusers
        import torch

        pipeline_class = getattr(diffusers, self.spec.pipeline, None)
        if pipeline_class is None:
            raise GeneratorLoadError(f"model {self.spec.name}: diffusers {diffusers.__version__} "
                                     f"has no {self.spec.pipeline} — upgrade diffusers")
        _check_text_cleaner(pipeline_class, self.spec.name)
        self.dtype = self._dtype(device, torch)
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if not local and self.revision:
            kwargs["revision"] = self.revision
        try:
            pipe = pipeline_class.from_pretrained(location, **kwargs)
        except (MemoryError, OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            if _memory_exhausted(exc, torch):
                raise self._oom(exc, "loading", {}, device) from exc
            raise GeneratorLoadError(
                f"model {self.spec.name}: {self.spec.pipeline} could not load the weights at "
                f"{location}: {exc}") from exc
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.device = device
        try:
            self._place_and_tune(torch)
        except GeneratorError:
            self.release()
            raise
        except Exception as exc:  # whatever diffusers raises while placing: a load error
            out_of_memory = (self._oom(exc, "placing on the device", {}, device)
                             if _memory_exhausted(exc, torch) else None)
            self.release()
            if out_of_memory is not None:
                raise out_of_memory from exc
            raise GeneratorLoadError(f"model {self.spec.name}: cannot run on {device} with "
                                     f"options {self.options or 'none'}: {exc}") from exc
        self.load_seconds = time.monotonic() - started

    def _check_device(self, device: str) -> None:
        on_cpu = device.split(":")[0] == "cpu"
        placed_on_cpu = self.options.get("device") == "cpu"
        if (self.spec.needs_gpu and on_cpu and not placed_on_cpu
                and not _truthy(self.options.get("allow_cpu"))):
            raise GeneratorNeedsGpu(
                f"model {self.spec.name} needs a GPU ({self.spec.gpus} x ~"
                f"{self.spec.gpu_memory_gb:g} GB) and this worker has only a CPU — run it on a "
                "GPU worker, or give the shot options {device: cpu} to place it on CPU workers "
                "(or allow_cpu=true to run it on whatever worker's CPU; very slow either way: "
                "for tiny models and smoke tests)")

    def _check_weights(self) -> tuple[str, bool]:
        """Where the weights are and whether that is a local folder; raises GeneratorLoadError
        naming the model, the path and the expected pipeline when they are not this model's."""
        weights = self.weights
        expected = self.spec.pipeline
        if not weights:
            raise GeneratorLoadError(f"model {self.spec.name}: no weights given and the catalog "
                                     "names no repository")
        path = Path(weights).expanduser()
        local = path.exists() or weights.startswith(("/", ".", "~")) or weights.count("/") != 1
        if local:
            if not path.is_dir():
                raise GeneratorLoadError(
                    f"model {self.spec.name}: weights folder {path} does not exist — point "
                    f"`weights` at a saved {expected} folder (one with model_index.json)")
            index_path = path / "model_index.json"
            if not index_path.is_file():
                raise GeneratorLoadError(
                    f"model {self.spec.name}: {path} is not a diffusers pipeline folder (no "
                    f"model_index.json); expected the weights of a {expected}")
            location = str(path)
        else:
            index_path = self._hub_index(weights)
            location = weights
        index = self._read_json(Path(index_path))
        found = index.get("_class_name")
        if not _accepts(self.spec, found):
            raise GeneratorLoadError(
                f"model {self.spec.name}: the weights at {location} are a {found} pipeline, "
                f"not {expected} — point `weights` at {self.spec.name}'s own folder "
                f"({self.spec.repo or expected})")
        if local:  # a hub id would cost a download of the transformer config: class check only
            transformer = path / "transformer" / "config.json"
            self._check_variant(location, found, _variant_of(
                index, self._read_json(transformer) if transformer.is_file() else None))
        return location, local

    def _read_json(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise GeneratorLoadError(f"model {self.spec.name}: cannot read {path}: "
                                     f"{exc}") from exc

    def _check_variant(self, location: str, pipeline: str,
                       found: dict[str, tuple[bool, str]]) -> None:
        """Refuse weights of another variant saved under the same pipeline class (Wan 2.2
        experts loaded as Wan 2.1 run as one half of the model; TI2V or FLF2V weights run with
        the wrong conditioning), naming each marker that differs and the models that match."""
        expected = _expected_variant(self.spec)
        differ = [f"{shown}: {_VARIANT_WORDS[marker][has]}, where {self.spec.name} has "
                  f"{_VARIANT_WORDS[marker][expected[marker]]}"
                  for marker, (has, shown) in found.items() if has != expected[marker]]
        if not differ:
            return
        matching = [spec.name for spec in CATALOG.values() if _accepts(spec, pipeline) and all(
            has == _expected_variant(spec)[marker] for marker, (has, _) in found.items())]
        raise GeneratorLoadError(
            f"model {self.spec.name}: the weights at {location} are another {pipeline} model "
            f"({'; '.join(differ)}) — point `weights:` at {self.spec.name}'s own folder "
            f"({self.spec.repo or self.spec.pipeline}), or pick the model these weights are: "
            f"{', '.join(matching) or 'none in the catalog'}")

    def _hub_index(self, repo: str) -> str:
        try:
            from huggingface_hub import hf_hub_download

            return hf_hub_download(repo, "model_index.json", revision=self.revision)
        except Exception as exc:  # offline, unknown repo, no access: all the same to the user
            raise GeneratorLoadError(
                f"model {self.spec.name}: no local folder {repo} and it cannot be fetched from "
                f"the Hugging Face hub ({type(exc).__name__}: {exc}) — download the "
                f"{self.spec.pipeline} weights once, or point `weights` at a local folder") from exc

    def _dtype(self, device: str, torch) -> Any:
        name = self.options.get("dtype")
        if name:
            if str(name) not in _DTYPES:
                raise GeneratorLoadError(f"option dtype={name!r}: use one of "
                                         f"{', '.join(sorted(set(_DTYPES.values())))}")
            return getattr(torch, _DTYPES[str(name)])
        return torch.float32 if device.split(":")[0] == "cpu" else torch.bfloat16

    def _transformers(self) -> list[Any]:
        return [m for m in (getattr(self.pipe, "transformer", None),
                            getattr(self.pipe, "transformer_2", None)) if m is not None]

    def _place_and_tune(self, torch) -> None:
        pipe, device, options = self.pipe, self.device, self.options
        on_cpu = device.split(":")[0] == "cpu"
        offload = options.get("group_offload") or None
        if offload is not None and not _truthy(offload):
            offload = None
        if on_cpu and (offload or _truthy(options.get("cpu_offload"))):
            self.load_warnings.append("cpu_offload/group_offload do nothing on a CPU: ignored")
        elif offload:
            if _truthy(options.get("cpu_offload")):
                self.load_warnings.append("cpu_offload ignored: group_offload already keeps the "
                                          "model off the GPU between uses")
            leaf = str(offload).lower() == "leaf"
            pipe.enable_group_offload(
                onload_device=torch.device(device), offload_device=torch.device("cpu"),
                offload_type="leaf_level" if leaf else "block_level",
                num_blocks_per_group=None if leaf else 1, use_stream=True)
            self.applied["group_offload"] = "leaf" if leaf else "block"
        elif _truthy(options.get("cpu_offload")):
            pipe.enable_model_cpu_offload(device=device)
            self.applied["cpu_offload"] = True
        else:
            pipe.to(device)
        if _truthy(options.get("vae_tiling")):
            vae = getattr(pipe, "vae", None)
            if vae is not None and hasattr(vae, "enable_tiling"):
                vae.enable_tiling()
                self.applied["vae_tiling"] = True
            else:
                self.load_warnings.append(f"vae_tiling: {self.spec.pipeline}'s VAE has no tiling")
        tuning = [f"{name}={options[name]!r}" for name in ("attention_backend", "cache", "compile")
                  if _truthy(options.get(name))]
        if tuning and not self._transformers():  # SVD: a UNet, which these would skip silently
            unet = getattr(pipe, "unet", None)
            one = len(tuning) == 1
            raise GeneratorLoadError(
                f"model {self.spec.name}: {', '.join(tuning)} {'acts' if one else 'act'} on a "
                f"diffusion transformer and {type(pipe).__name__} has none"
                f"{f' (it denoises with a {type(unet).__name__})' if unet is not None else ''}"
                f" — drop {'it' if one else 'them'} for this model")
        backend = options.get("attention_backend")
        if backend:
            for transformer in self._transformers():
                try:
                    transformer.set_attention_backend(str(backend))
                except Exception as exc:
                    raise GeneratorLoadError(f"model {self.spec.name}: attention_backend "
                                             f"{backend!r} cannot be used: {exc}") from exc
            self.applied["attention_backend"] = str(backend)
        cache = options.get("cache")
        if cache:
            for transformer in self._transformers():
                before = _hook_count(transformer)
                config = self._cache_config(str(cache))
                try:
                    transformer.enable_cache(config)
                except Exception as exc:  # diffusers' hooks fail in their own ways
                    raise GeneratorLoadError(
                        f"model {self.spec.name}: cache={cache!r} cannot be applied to "
                        f"{type(transformer).__name__} ({type(exc).__name__}: {exc}) — try "
                        "another cache, or none") from exc
                if _hook_count(transformer) == before:  # diffusers found nothing to cache
                    raise GeneratorLoadError(
                        f"model {self.spec.name}: cache={cache!r} found no blocks to cache in "
                        f"{type(transformer).__name__} — try another cache, or none")
            self.applied["cache"] = str(cache)
        if _truthy(options.get("compile")):
            for transformer in self._transformers():
                if getattr(transformer, "_repeated_blocks", None):
                    transformer.compile_repeated_blocks(fullgraph=True)
                    self.applied["compile"] = "repeated_blocks"
                else:
                    transformer.compile()
                    self.applied["compile"] = "whole_model"

    def _cache_config(self, text: str, steps: int | None = None) -> Any:
        """The diffusers cache config an option names. MagCache schedules by the number of
        denoising steps, so it is built for `steps` (re-built per call when they change)."""
        from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

        kind, _, value = text.partition(":")
        try:
            if kind == "first_block":
                return FirstBlockCacheConfig(threshold=float(value or 0.05))
            if kind == "taylorseer":
                # Lite: predict the output projection and skip the blocks between refreshes.
                # (The full variant keeps Taylor factors of every attention output of every
                # block, far beyond memory for video-length sequences, and its default module
                # names do not even match Wan's attn1/attn2.)
                import torch

                return TaylorSeerCacheConfig(cache_interval=int(value or 5), use_lite_mode=True,
                                             taylor_factors_dtype=torch.float32)
            if kind == "magcache":
                ratios = self.options.get("mag_ratios")
                if not ratios:
                    raise GeneratorLoadError(
                        "option cache=magcache needs mag_ratios (comma-separated, from a "
                        "calibration run of this model) — or use cache=first_block")
                schedule = {"num_inference_steps": steps} if steps else {}
                return MagCacheConfig(mag_ratios=[float(r) for r in str(ratios).split(",")],
                                      threshold=float(value or 0.06), **schedule)
        except ValueError as exc:
            raise GeneratorLoadError(f"option cache={text!r}: {exc}") from exc
        raise GeneratorLoadError(f"option cache={text!r}: use first_block[:threshold], "
                                 "taylorseer[:interval] or magcache")

    def _prepare_cache(self, steps: int) -> None:
        """Start every call from a clean cache: a cache hook keeps state between steps, which a
        call that stopped half way (an error, an interrupt) would otherwise hand to the next
        one, and MagCache must know this call's step count."""
        cache = self.applied.get("cache")
        if not cache:
            return
        for transformer in self._transformers():
            config = getattr(transformer, "_cache_config", None)
            if getattr(config, "num_inference_steps", steps) != steps:  # MagCache
                transformer.disable_cache()
                transformer.enable_cache(self._cache_config(cache, steps))
            else:
                transformer._reset_stateful_cache()

    def split(self, gpus: int, rank: int) -> None:
        """Run as member `rank` of a gang of `gpus` processes that form torch.distributed's
        default group: diffusers' own context parallelism (Ulysses) splits the attention of the
        pipeline's transformers (both experts of Wan 2.2) across them by heads. Every member
        runs the whole call with the same seed and ends with the same frames."""
        if gpus <= 1:
            return
        from diffusers import ContextParallelConfig

        split = 0
        for name in ("transformer", "transformer_2"):
            component = getattr(self.pipe, name, None)
            if component is None:
                continue
            if getattr(component, "_cp_plan", None) is None:
                raise GeneratorLoadError(
                    f"model {self.spec.name}: diffusers has no context parallelism for "
                    f"{type(component).__name__} — render it with gpus: 1")
            component.enable_parallelism(config=ContextParallelConfig(ulysses_degree=gpus))
            split += 1
        if not split:
            raise GeneratorLoadError(f"model {self.spec.name}: {self.spec.pipeline} has no "
                                     "transformer to split — render it with gpus: 1")
        self.applied["gang"] = {"gpus": gpus, "rank": rank, "ulysses_degree": gpus}

    def release(self) -> None:
        on_gpu = self.device is not None and self.device.split(":")[0] != "cpu"
        self.pipe = None
        self._siblings.clear()
        self.device = None
        gc.collect()
        if on_gpu:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # generating

    def generate(self, task: ShotTask, *, images: ImageSource = images_from_files,
                 progress: ProgressCallback | None = None, attempt: int = 1) -> GeneratedFrames:
        """1. pick the pipeline for the task's images; 2. assemble and length-check the prompt;
        3. build the call; 4. run it from a clean cache state, reporting each step, turning
        out-of-memory (GPU or host) into GeneratorOutOfMemory; 5. frames to uint8."""
        if self.pipe is None:
            raise GeneratorError(f"model {self.spec.name} is not loaded: call load(device) first")
        if task.model != self.spec.name:
            raise GeneratorError(f"{task.shot_id}: the task is for model {task.model}, this "
                                 f"generator holds {self.spec.name}")
        import torch

        started = time.monotonic()
        warnings = list(self.load_warnings)
        first, last, references, videos = self._pictures(task, images)
        pipe = (self._pipeline_for(first is not None or last is not None)
                if "source_video" not in videos or self.spec.can(Ability.MASK)
                else self._video_sibling())
        parameters = _call_parameters(pipe)
        self._check_trained_size(task, pipe)
        family = self.spec.family

        prompt = assemble_prompt(task, family)
        kwargs: dict[str, Any] = {
            "height": task.height, "width": task.width, "num_frames": task.num_frames,
            "num_inference_steps": task.steps, "guidance_scale": task.guidance,
            "output_type": "np",
        }
        max_length = self._max_sequence_length(task, parameters, pipe, warnings)
        if "prompt" in parameters:
            kwargs["prompt"], cut = _fit_prompt(pipe, prompt, max_length)
            if cut:
                warnings.append(f"prompt cut to {max_length} tokens (the text encoder's length "
                                f"for this call): dropped “{cut}”")
            if task.negative and "negative_prompt" in parameters:
                kwargs["negative_prompt"], cut = _fit_prompt(pipe, task.negative, max_length)
                if cut:
                    warnings.append(f"negative prompt cut to {max_length} tokens: dropped "
                                    f"“{cut}”")
            if "max_sequence_length" in parameters:
                kwargs["max_sequence_length"] = max_length
        elif task.prompt.strip():
            warnings.append(f"{self.spec.pipeline} takes no text: the prompt is not used")
        self._add_pictures(kwargs, parameters, pipe, task, first, last, references)
        if videos:
            self._add_videos(kwargs, parameters, pipe, task, first, last, videos)
        if "frame_rate" in parameters:
            kwargs["frame_rate"] = round(task.fps)
        if "fps" in parameters:
            kwargs["fps"] = round(task.fps)
        if "max_guidance_scale" in parameters:  # SVD: guidance ramps from 1 to the shot's value
            kwargs.pop("guidance_scale", None)
            # One frame has no ramp: from 1.0 SVD would prepare the image for guidance and then
            # denoise without it (a shape error); the shot's value alone keeps the two in step.
            low = 1.0 if task.num_frames > 1 else task.guidance
            kwargs["min_guidance_scale"], kwargs["max_guidance_scale"] = low, task.guidance
        window = parameters.get("base_num_frames")
        if "overlap_history" in parameters and window is not None:
            # SkyReels-V2 diffusion forcing: past one window (base_num_frames) it generates in
            # overlapping windows and then requires overlap_history (an option may choose it)
            base = {**self.options, **task.options}.get("base_num_frames", window.default)
            if str(base).isdigit() and task.num_frames > int(base):
                kwargs["overlap_history"] = _OVERLAP_HISTORY
        extra, unknown = self._call_options(task, parameters)
        kwargs.update(extra)
        if unknown:
            warnings.append(f"options not used by {type(pipe).__name__}: "
                            f"{', '.join(sorted(unknown))}")
        kwargs = {k: v for k, v in kwargs.items() if k in parameters}
        if "guidance_scale" not in parameters and hasattr(getattr(pipe, "guider", None), "new"):
            # (HunyuanVideo 1.5: guidance is the pipeline's guider component)
            pipe.guider = pipe.guider.new(guidance_scale=task.guidance)
        padded = _whole_windows(pipe, kwargs, parameters)
        if padded:
            warnings.append(f"{type(pipe).__name__} fails on a partial last window: generated "
                            f"{padded} frames (whole windows) and kept the first "
                            f"{task.num_frames}")
            kwargs["num_frames"] = padded
        warnings += _text_encoder_notes(pipe, kwargs, parameters)

        steps_done = 0
        total = task.steps * _segments(kwargs, parameters, task.num_frames)

        def on_step(_pipe, _step, _timestep, _tensors):
            nonlocal steps_done
            steps_done += 1
            if progress is not None:
                progress(steps_done, max(total, steps_done))
            return {}

        if "callback_on_step_end" in parameters:  # (HunyuanVideo 1.5 takes no step callback:
            kwargs["callback_on_step_end"] = on_step  # its progress shows when the call ends)
        kwargs["generator"] = torch.Generator(device="cpu").manual_seed(task.seed)
        self._prepare_cache(task.steps)
        called = time.monotonic()
        try:
            output = pipe(**kwargs)
        except (MemoryError, RuntimeError) as exc:
            if not _memory_exhausted(exc, torch):
                raise
            raise self._oom(exc, f"{task.shot_id} take {task.take} segment {task.segment}",
                            {"width": task.width, "height": task.height,
                             "frames": task.num_frames, "steps": task.steps}) from exc
        finished = time.monotonic()
        if not steps_done and progress is not None:
            progress(total, total)
        frames = _to_uint8(output.frames if hasattr(output, "frames") else output[0])
        if padded:
            frames = frames[:task.num_frames]
        sound, voice = _sound_of(output, pipe, task) if self.spec.makes_sound else (None, None)
        record = {
            "generator": "diffusers", "model": self.spec.name,
            "pipeline": type(pipe).__name__, "weights": self.weights,
            "revision": self.revision, "device": self.device, "dtype": str(self.dtype),
            "prompt": kwargs.get("prompt"), "negative_prompt": kwargs.get("negative_prompt"),
            "seed": task.seed, "attempt": attempt,
            "call": {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))
                     and k not in ("prompt", "negative_prompt")},
            "conditioning": [{"role": c.role, "name": c.name, "path": c.path,
                              "from_key": c.from_key, "sha256": c.sha256}
                             for c in task.conditioning],
            "options": {**self.applied, **extra},
            "parallel": self.applied.get("gang"),  # context parallelism across a gang
            "warnings": warnings, "steps_reported": steps_done,
            "timings": {"load_seconds": self.load_seconds, "prepare_seconds": called - started,
                        "call_seconds": finished - called},
            **({"voice": voice} if voice else {}),
        }
        return GeneratedFrames(frames=frames, fps=task.fps, record=record,
                               sound=sound).check(task)

    def _pictures(self, task: ShotTask, images: ImageSource):
        def fetch(role: str) -> list[Image.Image]:
            pictures = []
            for condition in task.conditioning_for(role):
                if not self.spec.can(Ability(role)):
                    raise GeneratorError(
                        f"{task.shot_id}: model {self.spec.name} cannot be conditioned on a "
                        f"{role.replace('_', ' ')} — choose a model that can (see "
                        "`previz models`)")
                try:
                    pictures.append(images(condition).convert("RGB"))
                except GeneratorError:
                    raise
                except Exception as exc:
                    raise GeneratorError(f"{task.shot_id}: {role} image "
                                         f"({condition.path or condition.from_key}) could not "
                                         f"be fetched: {exc}") from exc
            return pictures

        firsts, lasts, references = fetch("first_image"), fetch("last_image"), fetch("reference")
        first = fit_image(firsts[0], task.width, task.height) if firsts else None
        last = fit_image(lasts[0], task.width, task.height) if lasts else None
        return first, last, references, self._videos(task, images)

    def _videos(self, task: ShotTask, images: ImageSource) -> dict[str, Any]:
        """A layout's control or source frames and a mask's, by role: each a list of the
        task's frame count (the worker retimes and extracts them: generate/controls.py), or one
        picture for a still mask."""
        videos: dict[str, Any] = {}
        for role, abilities in _VIDEO_ROLES.items():
            for condition in task.conditioning_for(role):
                if not any(self.spec.can(ability) for ability in abilities):
                    raise GeneratorError(
                        f"{task.shot_id}: model {self.spec.name} cannot be conditioned on a "
                        f"{role.replace('_', ' ')} — choose a model that can (see `previz "
                        "models`)")
                videos[role] = images(condition)
        return videos

    def _pipeline_for(self, with_images: bool) -> Any:
        """The loaded pipeline, or its image-to-video sibling on the same weights."""
        name = type(self.pipe).__name__
        sibling = IMAGE_SIBLINGS.get(name)
        if not with_images or sibling is None or "image" in _call_parameters(self.pipe):
            return self.pipe
        if sibling not in self._siblings:
            import diffusers

            self._siblings[sibling] = _sharing_components(getattr(diffusers, sibling),
                                                          self.pipe)
        return self._siblings[sibling]

    def _video_sibling(self) -> Any:
        """Video-to-video on the loaded text-to-video weights (WanVideoToVideoPipeline)."""
        sibling = VIDEO_SIBLINGS.get(type(self.pipe).__name__)
        if sibling is None:
            raise GeneratorError(f"model {self.spec.name}: {type(self.pipe).__name__} has no "
                                 "video-to-video sibling — use a model that takes a source video")
        if sibling not in self._siblings:
            import diffusers

            self._siblings[sibling] = _sharing_components(getattr(diffusers, sibling),
                                                          self.pipe)
        return self._siblings[sibling]

    def _add_videos(self, kwargs, parameters, pipe, task, first, last, videos) -> None:
        """A layout and a mask: VACE's `video` and `mask` (a control video generated in full;
        a plate or a still kept where the mask is black), or video-to-video's `video`."""
        from PIL import Image

        count = task.num_frames
        if "pose_video" in parameters:  # Wan 2.2 Animate: a performance drives a character
            kwargs["image"] = videos["character"]
            kwargs["pose_video"], kwargs["face_video"] = videos["pose_video"], videos["face_video"]
            kwargs["mode"] = _condition(task, "character").control or "animate"
            if kwargs["mode"] == "replace":
                kwargs["background_video"] = videos["background_video"]
                kwargs["mask_video"] = [frame.convert("L") for frame in videos["mask"]]
        elif "mask" in parameters:  # Wan VACE
            size = (task.width, task.height)
            white, black = Image.new("L", size, 255), Image.new("L", size, 0)
            if "mask" in videos:
                plate = videos.get("source_video") or [first] * count
                mask = videos["mask"]
                mask = ([mask.convert("L")] * count if isinstance(mask, Image.Image)
                        else [frame.convert("L") for frame in mask])
                kwargs["video"], kwargs["mask"] = list(plate), mask
                strength = _condition(task, "source_video").strength
            else:
                kwargs["video"] = list(videos["control_video"])
                kwargs["mask"] = [white] * count
                if first is not None:  # kept frames at the ends, as keyframes are
                    kwargs["video"][0], kwargs["mask"][0] = first, black
                if last is not None:
                    kwargs["video"][-1], kwargs["mask"][-1] = last, black
                strength = _condition(task, "control_video").strength
            if strength is not None and "conditioning_scale" in parameters:
                kwargs["conditioning_scale"] = strength
        elif "video" in parameters and "source_video" in videos:  # video-to-video
            kwargs["video"] = list(videos["source_video"])
            strength = _condition(task, "source_video").strength or 1.0
            # how far from noise it is generated again: all the way at strength 0, 40% at 1 —
            # and at least one of its steps (the pipeline runs int(steps x strength) of them)
            kwargs["strength"] = max(1.0 - SOURCE_HOLD * strength, 1.0 / max(1, task.steps))
        else:
            raise GeneratorError(f"{task.shot_id}: {type(pipe).__name__} takes no video")

    def _add_pictures(self, kwargs, parameters, pipe, task, first, last, references) -> None:
        name = type(pipe).__name__
        if "pose_video" in parameters:
            return  # its picture is the performance's character (`_add_videos`)
        if "conditions" in parameters:  # LTX condition pipeline: keyframes at frame indices
            if first is not None or last is not None:
                from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

                conditions = []
                if first is not None:
                    conditions.append(LTXVideoCondition(image=first, frame_index=0))
                if last is not None:
                    conditions.append(LTXVideoCondition(image=last,
                                                        frame_index=task.num_frames - 1))
                kwargs["conditions"] = conditions
        elif "reference_images" in parameters:  # Wan VACE
            if references:
                kwargs["reference_images"] = references
            if first is not None or last is not None:  # (with a layout: `_add_videos`)
                kwargs["video"], kwargs["mask"] = _vace_keyframes(first, last, task)
        elif "image" in parameters:
            if first is None:
                raise GeneratorError(f"{task.shot_id}: {name} needs a first image (a panel "
                                     "`image:` or a continued shot) and the task has none")
            kwargs["image"] = first
            transformer = getattr(pipe, "transformer", None)
            if last is None and getattr(getattr(transformer, "config", None),
                                        "pos_embed_seq_len", None):
                raise GeneratorError(f"{task.shot_id}: model {self.spec.name} generates between "
                                     "a first and a last frame and the task has no last image "
                                     "— give the shot `last_image:`, or use an image-to-video "
                                     "model")
            if last is not None:
                if "last_image" not in parameters:
                    raise GeneratorError(f"{task.shot_id}: {name} cannot take a last image")
                kwargs["last_image"] = last
        elif first is not None or last is not None:
            raise GeneratorError(f"{task.shot_id}: {name} takes no images, but the task is "
                                 "conditioned on one")
        if references and "reference_images" not in parameters:
            raise GeneratorError(f"{task.shot_id}: {name} takes no reference images")

    def _max_sequence_length(self, task: ShotTask, parameters, pipe,
                             warnings: list[str]) -> int | None:
        value = task.options.get("max_sequence_length", self.options.get("max_sequence_length"))
        trained = _trained_text_length(pipe)
        if trained is not None:  # CogVideoX: the transformer's own length before the pipeline's
            length, fixed = trained
            if value is None:
                return length
            if fixed and int(value) != length:
                warnings.append(f"max_sequence_length={value} not used: {self.spec.name}'s "
                                f"transformer takes exactly {length} text tokens (its position "
                                "embeddings span them)")
                return length
        if value is not None:
            return int(value)
        parameter = parameters.get("max_sequence_length")
        if parameter is not None and isinstance(parameter.default, int):
            return parameter.default
        return None

    def _check_trained_size(self, task: ShotTask, pipe) -> None:
        size = _trained_size(pipe)
        if size is not None and size != (task.width, task.height):
            raise GeneratorError(
                f"{task.shot_id}: model {self.spec.name} makes {size[0]}x{size[1]} only (its "
                f"learned position embeddings fix the size), not {task.width}x{task.height} — "
                f"give the shot size {size[0]}x{size[1]} and let the cut scale it")

    def _call_options(self, task: ShotTask, parameters) -> tuple[dict[str, Any], set[str]]:
        from previz.generate.registry import declared_options

        merged = {**self.options, **task.options}
        # Options of previz (this generator's, another generator's, the plan's placement) are
        # not pipeline arguments and not warned about.
        not_call = declared_options() | PLACEMENT_OPTIONS
        extra, unknown = {}, set()
        for name, value in merged.items():
            if name in not_call:
                continue
            if name in parameters and name not in _MANAGED:
                extra[name] = value
            else:
                unknown.add(name)
        return extra, unknown

    def _oom(self, exc: BaseException, where: str, size: dict[str, Any],
             device: str | None = None) -> GeneratorOutOfMemory:
        """The out-of-memory error to raise: what was tried (size, options applied, device,
        dtype) and the next lighter option set the engine can retry with."""
        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        device = device or self.device or "cpu"
        memory = _memory_exhausted(exc, torch) or "gpu"
        tried = {**size, "options": {**self.applied}, "device": device,
                 "dtype": str(self.dtype), "memory": memory}
        if memory == "cpu":  # offloading would only add to host memory; tiled decoding saves
            suggestion = None if "vae_tiling" in self.applied else {"vae_tiling": True}
        elif "group_offload" in self.applied:
            suggestion = None
        elif "cpu_offload" in self.applied:
            suggestion = {"group_offload": True, "vae_tiling": True}
        else:
            suggestion = {"cpu_offload": True, "vae_tiling": True}
        return GeneratorOutOfMemory(
            f"model {self.spec.name} ran out of {memory.upper()} memory while {where} "
            f"({', '.join(f'{k}={v}' for k, v in size.items()) or 'loading'}; options "
            f"{self.applied or 'none'}): {str(exc).splitlines()[0] if str(exc) else ''}",
            model=self.spec.name, tried=tried, suggestion=suggestion)


def _check_text_cleaner(pipeline_class, model: str) -> None:
    """Wan and SkyReels pipelines clean prompts with ftfy, which diffusers imports only when
    installed and then calls unguarded: probe the cleaner at load, not minutes into a call."""
    import sys

    cleaner = getattr(sys.modules.get(pipeline_class.__module__), "basic_clean", None)
    if cleaner is None:
        return
    try:
        cleaner("previz")
    except NameError as exc:
        raise GeneratorLoadError(f"model {model}: {pipeline_class.__name__} cannot clean "
                                 f"prompts ({exc}) — pip install ftfy") from None


def _accepts(spec: ModelSpec, pipeline: str | None) -> bool:
    """Whether weights saved as `pipeline` load into the model's pipeline class."""
    return pipeline == spec.pipeline or pipeline in COMPATIBLE_PIPELINES.get(spec.pipeline or "",
                                                                             frozenset())


def _variant_of(index: dict[str, Any],
                transformer: dict[str, Any] | None) -> dict[str, tuple[bool, str]]:
    """What a weights folder holds: marker -> (set?, the field and value that say so). Markers
    the folder cannot show (no transformer config, as in SVD's UNet) are left out."""
    second = index.get("transformer_2")
    found = {
        "two_experts": (bool(second and second[0]), f"model_index.json transformer_2={second}"),
        "expand_timesteps": (bool(index.get("expand_timesteps")),
                             f"model_index.json expand_timesteps={index.get('expand_timesteps')}"),
    }
    if transformer is not None:
        length = transformer.get("pos_embed_seq_len")
        found["first_last_frame"] = (length is not None,
                                     f"transformer/config.json pos_embed_seq_len={length}")
        channels_in, channels_out = transformer.get("in_channels"), transformer.get("out_channels")
        if isinstance(channels_in, int) and isinstance(channels_out, int) and \
                index.get("_class_name") not in _CONDITION_CHANNEL_PIPELINES:
            found["image_channels"] = (channels_in > channels_out,
                                       f"transformer/config.json in_channels={channels_in} "
                                       f"(out_channels={channels_out})")
    return found


def _expected_variant(spec: ModelSpec) -> dict[str, bool]:
    """The markers a catalog entry's weights carry (see _VARIANT_WORDS)."""
    image_channels = spec.pipeline in _IMAGE_CHANNEL_PIPELINES
    return {"two_experts": "boundary_ratio" in spec.extra,
            "expand_timesteps": bool(spec.extra.get("expand_timesteps")),
            "first_last_frame": image_channels and spec.can(Ability.LAST_IMAGE),
            "image_channels": image_channels}


def _sharing_components(cls, pipe) -> Any:
    """A pipeline of class `cls` built on `pipe`'s very modules and settings. (`from_pipe` would
    also cast every shared module to one dtype, undoing the float32 parts of a bf16 model.)"""
    parameters = inspect.signature(cls.__init__).parameters
    kwargs = {name: module for name, module in pipe.components.items() if name in parameters}
    for name in parameters:
        if name not in kwargs and name != "self" and name in pipe.config:
            kwargs[name] = pipe.config[name]
    sibling = cls(**kwargs)
    sibling.set_progress_bar_config(disable=True)
    return sibling


def _hook_count(module) -> int:
    """How many diffusers hooks are registered on a module and everything inside it."""
    return sum(len(getattr(getattr(m, "_diffusers_hook", None), "hooks", None) or ())
               for m in module.modules())


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off", "none")
    return bool(value)


def _oom_types(torch) -> tuple[type[BaseException], ...]:
    """torch's out-of-memory exception types (accelerator memory)."""
    types = [getattr(torch, "OutOfMemoryError", None),
             getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)]
    return tuple(t for t in types if t is not None)


# How allocators that raise a plain RuntimeError say they ran out: PyTorch's CPU allocator
# ("DefaultCPUAllocator: not enough memory", "can't allocate memory"), and for accelerators
# older CUDA builds ("CUDA out of memory"), cuBLAS and MPS ("MPS backend out of memory").
_CPU_OOM_TEXT = ("cpuallocator", "not enough memory", "can't allocate memory")
_GPU_OOM_TEXT = ("out of memory", "cublas_status_alloc_failed")


def _memory_exhausted(exc: BaseException, torch) -> str | None:
    """Which memory an exception says ran out: "gpu" (the accelerator's), "cpu", or None when
    it is not an out-of-memory error."""
    if isinstance(exc, _oom_types(torch)):
        return "gpu"
    if isinstance(exc, MemoryError):
        return "cpu"
    if not isinstance(exc, RuntimeError):
        return None
    text = str(exc).lower()
    if any(part in text for part in _CPU_OOM_TEXT):
        return "cpu"
    if any(part in text for part in _GPU_OOM_TEXT):
        return "gpu"
    return None


def _transformer_config(pipe) -> Any:
    return getattr(getattr(pipe, "transformer", None), "config", None)


def _trained_text_length(pipe) -> tuple[int, bool] | None:
    """The text length a CogVideoX transformer is built for (max_text_seq_length), and whether
    it takes no other: sincos or learned position embeddings span the text tokens too
    (CogVideoX-2b, CogVideoX-5b-I2V: any other length is a tensor size error), rotary ones
    (CogVideoX-5b) do not. None for transformers that do not say."""
    config = _transformer_config(pipe)
    length = getattr(config, "max_text_seq_length", None)
    if not isinstance(length, int):
        return None
    fixed = (not getattr(config, "use_rotary_positional_embeddings", False)
             or bool(getattr(config, "use_learned_positional_embeddings", False)))
    return length, fixed


def _trained_size(pipe) -> tuple[int, int] | None:
    """(width, height) of a transformer whose learned position embeddings allow no other size
    (CogVideoX-5b-I2V: 720x480), or None."""
    config = _transformer_config(pipe)
    if not getattr(config, "use_learned_positional_embeddings", False):
        return None
    scale = getattr(pipe, "vae_scale_factor_spatial", None)
    width, height = getattr(config, "sample_width", None), getattr(config, "sample_height", None)
    if not all(isinstance(v, int) for v in (scale, width, height)):
        return None
    return width * scale, height * scale


def _sound_of(output, pipe, task: ShotTask) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """The call's waveform (LTX-2: `output.audio`, (batch, channels, samples) at its vocoder's
    `output_sampling_rate`) as 48 kHz stereo exactly as long as the frames (the model's own is
    a little shorter or longer: padded with silence or cut), and what the record says of it."""
    from fractions import Fraction

    from previz.media.audio import RATE, resampled, silence

    audio = getattr(output, "audio", None)
    rate = getattr(getattr(getattr(pipe, "vocoder", None), "config", None),
                   "output_sampling_rate", None)
    if audio is None or not rate:
        return None, {"source": None, "why": f"{type(pipe).__name__} returned no sound"}
    waveform = audio[0].detach().float().cpu().numpy() if hasattr(audio, "detach") \
        else np.asarray(audio[0], dtype=np.float32)
    sound = resampled(waveform, int(rate))
    wanted = round(Fraction(task.num_frames) * RATE / Fraction(task.fps).limit_denominator(1001))
    fitted = silence(wanted)
    fitted[:min(wanted, len(sound))] = sound[:wanted]
    return fitted, {"source": f"{type(pipe).__name__} audio", "sample_rate": int(rate),
                    "samples_made": len(sound), "samples": wanted}


def _call_parameters(pipe) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(type(pipe).__call__).parameters)


def _whole_windows(pipe, kwargs: dict[str, Any], parameters) -> int | None:
    """The frame count to generate so that a long call of a _WHOLE_WINDOWS_ONLY pipeline ends on
    a whole window (windows of base_num_frames, each after the first sharing overlap_history
    frames with the one before); None when the call needs no change."""
    overlap, frames = kwargs.get("overlap_history"), kwargs.get("num_frames")
    base = kwargs.get("base_num_frames", getattr(parameters.get("base_num_frames"), "default",
                                                  None))
    temporal = getattr(pipe, "vae_scale_factor_temporal", None)
    if type(pipe).__name__ not in _WHOLE_WINDOWS_ONLY or not all(
            isinstance(v, int) for v in (overlap, frames, base, temporal)) or frames <= base:
        return None
    latent, window, shared = ((n - 1) // temporal + 1 for n in (frames, base, overlap))
    if window <= shared:
        return None  # no window ever advances: left to the pipeline
    stride = window - shared
    whole = window + -(-(latent - window) // stride) * stride
    padded = (whole - 1) * temporal + 1
    return padded if padded > frames else None


def _token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])


def _fit_prompt(pipe, text: str, max_length: int | None,
                tokenizer_name: str = "tokenizer") -> tuple[str, str]:
    """The prompt cut at a word boundary to fit the text encoder (of `tokenizer_name`), and
    what was cut ('' if nothing was)."""
    tokenizer = getattr(pipe, tokenizer_name, None)
    if tokenizer is None or not max_length or _token_count(tokenizer, text) <= max_length:
        return text, ""
    words = text.split()
    low, high = 0, len(words)  # the most words that fit: binary search
    while low < high:
        middle = (low + high + 1) // 2
        if _token_count(tokenizer, " ".join(words[:middle])) <= max_length:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low]), " ".join(words[low:])


def _text_encoder_notes(pipe, kwargs: dict[str, Any], parameters) -> list[str]:
    """What the call's text encoders will not read, as warnings (kwargs is updated in place):
    1. a negative prompt a pipeline applies only with true_cfg_scale > 1 (HunyuanVideo, guidance-
    distilled) is dropped, not recorded as used; 2. a second text encoder (tokenizer_2, reading
    prompt_2, which defaults to the prompt: HunyuanVideo's CLIP) that truncates the text is
    named with its limit and the words it does not see. The prompt itself is left whole."""
    notes = []
    name = type(pipe).__name__
    true_cfg = parameters.get("true_cfg_scale")
    if true_cfg is not None and kwargs.get("negative_prompt"):
        try:
            scale = float(kwargs.get("true_cfg_scale", true_cfg.default))
        except (TypeError, ValueError):
            scale = None
        if scale is not None and scale <= 1:
            kwargs.pop("negative_prompt")
            notes.append(f"negative prompt not used: {name} applies it only with "
                         f"true_cfg_scale > 1 (true classifier-free guidance, a second "
                         f"transformer pass per step; now {scale:g}) — set option "
                         "true_cfg_scale to use it")
    tokenizer = getattr(pipe, "tokenizer_2", None)
    limit = getattr(tokenizer, "model_max_length", None)
    if "prompt_2" not in parameters or not isinstance(limit, int) or not 0 < limit < 100_000:
        return notes
    encoder = type(getattr(pipe, "text_encoder_2", None)).__name__
    for label, key in (("prompt", "prompt"), ("negative prompt", "negative_prompt")):
        text = kwargs.get(f"{key}_2") or kwargs.get(key)
        if not isinstance(text, str):
            continue
        _, unseen = _fit_prompt(pipe, text, limit, "tokenizer_2")
        if unseen:
            notes.append(f"the second text encoder ({encoder}, tokenizer_2) reads at most "
                         f"{limit} tokens of the {label}: it does not see “{unseen}”")
    return notes


# What each video (or performance picture) a task may carry asks of the model.
_VIDEO_ROLES: dict[str, tuple[Ability, ...]] = {
    "control_video": (Ability.CONTROL_VIDEO,),
    "source_video": (Ability.SOURCE_VIDEO, Ability.MASK),  # restyled, or a plate to inpaint
    "mask": (Ability.MASK, Ability.PERFORMANCE),  # a masked region, or where a performer is
    "character": (Ability.PERFORMANCE,),
    "pose_video": (Ability.PERFORMANCE,),
    "face_video": (Ability.PERFORMANCE,),
    "background_video": (Ability.PERFORMANCE,),
}


def _condition(task: ShotTask, role: str) -> Conditioning:
    """The task's conditioning of `role` (its strength, its control), or an empty one."""
    found = task.conditioning_for(role)
    return found[0] if found else Conditioning(role=role)


def _segments(kwargs: dict[str, Any], parameters, frames: int) -> int:
    """How many windows a pipeline that windows a long video itself (Wan Animate: each after
    the first starts from the last frame of the one before) renders: its step callback counts
    every window's steps."""
    if "segment_frame_length" not in parameters:
        return 1
    length = int(kwargs.get("segment_frame_length", parameters["segment_frame_length"].default))
    length = max(5, length // 4 * 4 + 1)
    return max(1, -(-(frames - 1) // (length - 1)))


def _vace_keyframes(first, last, task: ShotTask):
    """VACE's video + mask for fixed first/last frames: given frames kept (mask black), the rest
    generated (grey frames, mask white)."""
    from PIL import Image

    size = (task.width, task.height)
    grey = Image.new("RGB", size, (128, 128, 128))
    black, white = Image.new("L", size, 0), Image.new("L", size, 255)
    video = [grey] * task.num_frames
    mask = [white] * task.num_frames
    if first is not None:
        video[0], mask[0] = first, black
    if last is not None:
        video[-1], mask[-1] = last, black
    return list(video), list(mask)


def _to_uint8(frames) -> np.ndarray:
    """A pipeline's frames (np/torch/list, batch first, 0..1 floats) as (T, H, W, 3) uint8."""
    if isinstance(frames, (list, tuple)):
        frames = frames[0]
    if hasattr(frames, "detach"):
        frames = frames.detach().float().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim == 5:
        frames = frames[0]
    if frames.ndim == 4 and frames.shape[-1] != 3 and frames.shape[1] == 3:
        frames = frames.transpose(0, 2, 3, 1)
    if frames.dtype == np.uint8:
        return np.ascontiguousarray(frames)
    return np.ascontiguousarray((np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8))

