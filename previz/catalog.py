"""The model catalog: what each video model can do, as plain data (no torch, no diffusers).

The plan stage reads it to pick a model variant, do frame arithmetic and estimate cost; the
generate stage reads it to know which diffusers pipeline to build. Figures come from the models'
published cards (see shared/notes/tiny-diffusers.md); costs are seconds per frame-step at the
model's default size on the reference GPU named beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "Ability",
    "FrameRule",
    "ModelSpec",
    "CATALOG",
    "FAMILIES",
    "model_spec",
    "resolve_model",
    "known_model_names",
    "PLACEMENT_OPTIONS",
    "GANG_SIZES",
    "CARD_SIZES_GB",
    "parallel_speedup",
]

# Options the plan reads to place any model's work (`gpus`: how many per task; `device: cpu`: on
# CPU workers, for tiny models and smoke tests of a cluster). Never part of a take key.
PLACEMENT_OPTIONS = frozenset({"gpus", "device"})

# How many GPUs of one node a shot may run on (a gang: one process per GPU, one torch.distributed
# group), and the card sizes `previz models` says each model fits at each of them.
GANG_SIZES = (1, 2, 4, 8)
CARD_SIZES_GB = (24, 48, 80, 141)

# Context parallelism's speed-up by gang size. The one published figure for these models: Wan 2.1
# 14B at 720p takes about 1838 s on one H100 and 288 s on eight with xDiT's Ulysses/ring context
# parallelism (Wan 2.1 model card, shared/notes/tiny-diffusers.md): 6.38x on 8. Amdahl's law
# through that point (a parallel share of 96.4%) gives the sizes between: 1.93x on 2, 3.61x on 4.
# Smaller models split less well (less compute per all-to-all), so this is the best case.
_PARALLEL_SHARE = (1 - 288 / 1838) / (1 - 1 / 8)


def parallel_speedup(gpus: int) -> float:
    """How many times faster one shot runs on a gang of `gpus` than on one GPU."""
    return 1.0 / ((1 - _PARALLEL_SHARE) + _PARALLEL_SHARE / max(1, gpus))


class Ability(str, Enum):
    """What a model can be conditioned on."""

    TEXT = "text"
    FIRST_IMAGE = "first_image"
    LAST_IMAGE = "last_image"
    REFERENCE = "reference"
    CONTROL_VIDEO = "control_video"  # a layout's edges or grey levels steer every frame
    SOURCE_VIDEO = "source_video"  # video-to-video: a layout's own pictures, restyled
    MASK = "mask"  # only the white region of a mask is generated, the rest kept
    PERFORMANCE = "performance"  # a recorded performance's pose and face drive a character


@dataclass(frozen=True)
class FrameRule:
    """Frame counts a model accepts: `step * k + offset` for k >= 1, at most `max_frames`."""

    step: int = 1
    offset: int = 0
    max_frames: int | None = None

    def accepts(self, frames: int) -> bool:
        return frames >= self.smallest() and (frames - self.offset) % self.step == 0 and (
            self.max_frames is None or frames <= self.max_frames
        )

    def smallest(self) -> int:
        return self.step + self.offset

    def at_least(self, frames: int) -> int:
        """The smallest accepted count that is >= frames (may exceed max_frames; caller checks)."""
        if frames <= self.smallest():
            return self.smallest()
        k = -(-(frames - self.offset) // self.step)
        return k * self.step + self.offset

    def describe(self) -> str:
        if self.step == 1:
            return "any count" + (f" up to {self.max_frames}" if self.max_frames else "")
        rule = f"{self.step}k+{self.offset}" if self.offset else f"{self.step}k"
        return rule + (f", at most {self.max_frames}" if self.max_frames else "")


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry. `fps is None` means the model renders at the cut's rate (draft, synthetic)."""

    name: str
    family: str
    generator: str  # registry name in previz.generate: "draft", "synthetic" or "diffusers"
    pipeline: str | None  # diffusers pipeline class name
    repo: str | None  # default Hugging Face repository
    abilities: frozenset[Ability]
    fps: float | None
    frames: FrameRule
    size_multiple: int
    default_size: tuple[int, int] | None  # (width, height); None: the cut's delivery size
    max_pixels: int | None  # largest width*height the model is trained for
    gpus: int
    gpu_memory_gb: float
    cost_per_frame_step: float  # GPU-seconds per generated frame per step at default_size
    load_seconds: float  # typical time to load weights onto a GPU
    default_steps: int
    default_guidance: float
    revision: str | None = None
    # Text tokens its pipeline passes to the text encoder (the rest of a prompt is cut); None:
    # no text encoder.
    text_tokens: int | None = None
    # Makes default_size only (learned position embeddings fix it: CogVideoX-5b-I2V).
    fixed_size: bool = False
    # It makes the shot's sound with its picture: a shot's dialogue and sound reach it (and
    # are part of its takes' keys); others' shots are heard only through an audio: file.
    makes_sound: bool = False
    # It makes a still (one frame) as well as it makes a shot: trained on images as well as
    # video (Wan, LTX-Video, HunyuanVideo), so a shot's keyframe still has the look, the cast and
    # the weights of its motion pass, with nothing more to load (`previz render --stills`).
    makes_stills: bool = False
    # One shot across several GPUs of a node with diffusers' context parallelism (Ulysses: each
    # GPU attends with whole heads over the full sequence). `attention_heads` must divide by the
    # gang size (None: any size, the synthetic model); `tokens` is how generated frames and
    # pixels become the transformer's sequence: (frames per latent frame, pixels per token side),
    # VAE compression times patch size; the sequence must divide by the gang size too.
    splits: bool = False
    attention_heads: int | None = None
    tokens: tuple[int, int] = (4, 16)
    # GB every GPU of a gang holds whatever its size (the weights: Ulysses replicates them); the
    # rest of gpu_memory_gb (activations) divides among the gang.
    resident_memory_gb: float | None = None
    notes: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def can(self, ability: Ability) -> bool:
        return ability in self.abilities

    @property
    def needs_gpu(self) -> bool:
        return self.gpus > 0

    @property
    def max_frames(self) -> int | None:
        return self.frames.max_frames

    def sequence_tokens(self, frames: int, width: int, height: int) -> int:
        """The transformer's sequence length for a call of `frames` at width x height."""
        per_frame, per_side = self.tokens
        return ((frames - 1) // per_frame + 1) * (width // per_side) * (height // per_side)

    def split_problem(self, gpus: int, frames: int, width: int, height: int) -> str | None:
        """Why one call cannot run on a gang of `gpus` (None: it can)."""
        if gpus <= 1:
            return None
        if not self.splits:
            return (f"{self.name} runs on one GPU: diffusers has no context parallelism for "
                    "its transformer")
        if self.attention_heads is not None and self.attention_heads % gpus:
            return (f"{self.name} has {self.attention_heads} attention heads, which do not "
                    f"split {gpus} ways (each GPU attends with whole heads)")
        tokens = self.sequence_tokens(frames, width, height)
        if self.attention_heads is not None and tokens % gpus:
            return (f"{self.name}'s sequence for {frames} frames at {width}x{height} is "
                    f"{tokens} tokens, which do not split {gpus} ways")
        return None

    def speedup(self, gpus: int) -> float:
        return parallel_speedup(gpus) if self.splits and gpus > 1 else 1.0

    def memory_gb(self, gpus: int) -> float:
        """GB each GPU of a gang of `gpus` needs."""
        resident = self.gpu_memory_gb if self.resident_memory_gb is None else \
            self.resident_memory_gb
        return resident + (self.gpu_memory_gb - resident) / max(1, gpus)

    def gang_sizes(self) -> tuple[int, ...]:
        """The gang sizes some call of this model can run on."""
        if not self.needs_gpu and not self.splits:
            return ()
        return tuple(n for n in GANG_SIZES if n == 1 or (
            self.splits and (self.attention_heads is None or self.attention_heads % n == 0)))


T, FIRST, LAST, REF = Ability.TEXT, Ability.FIRST_IMAGE, Ability.LAST_IMAGE, Ability.REFERENCE
CONTROL, SOURCE, MASK = Ability.CONTROL_VIDEO, Ability.SOURCE_VIDEO, Ability.MASK
PERFORMANCE = Ability.PERFORMANCE
_WAN_FRAMES = FrameRule(4, 1, 81)
# Wan 2.1 1.3B: 261 s for 81 frames x 50 steps at 832x480 on one RTX 4090 (published).
_WAN_1_3B_COST = 261 / (81 * 50)
# Wan 2.1 14B: 1838 s for 81 frames x 50 steps at 1280x720 on one H100 (published).
_WAN_14B_COST = 1838 / (81 * 50)


def _wan_split(heads: int, resident_gb: float) -> dict[str, object]:
    """Wan's transformer splits (diffusers' WanTransformer3DModel has a context-parallel plan):
    its heads, and its sequence from the VAE (4x in time, 8x in space) and 1x2x2 patches. What
    stays on every GPU of a gang is an estimate: the DiT and the umT5 text encoder in bf16."""
    return {"splits": True, "attention_heads": heads, "tokens": (4, 16),
            "resident_memory_gb": resident_gb}


def _spec(name: str, family: str, pipeline: str | None, repo: str | None, abilities, **kw) -> ModelSpec:
    defaults = dict(
        generator="diffusers",
        makes_stills=True,
        fps=16.0,
        frames=_WAN_FRAMES,
        size_multiple=16,
        default_size=(832, 480),
        max_pixels=1280 * 720,
        gpus=1,
        gpu_memory_gb=24.0,
        cost_per_frame_step=_WAN_1_3B_COST,
        load_seconds=30.0,
        default_steps=50,
        default_guidance=5.0,
        text_tokens=512,  # Wan's umT5, as WanPipeline passes it
    )
    defaults.update(kw)
    return ModelSpec(name=name, family=family, pipeline=pipeline, repo=repo,
                     abilities=frozenset(abilities), **defaults)


_ENTRIES: list[ModelSpec] = [
    _spec("draft", "draft", None, None, {T, FIRST, LAST, REF}, generator="draft", fps=None,
          frames=FrameRule(1, 0, None), size_multiple=2, default_size=None, max_pixels=3840 * 2160,
          gpus=0, gpu_memory_gb=0.0, cost_per_frame_step=0.004, load_seconds=0.0,
          default_steps=1, default_guidance=0.0, text_tokens=None, makes_sound=True,
          notes="CPU animatic: panel or title card, camera move played as a 2D move; a temp "
                "track of its dialogue"),
    _spec("synthetic", "synthetic", None, None, {T, FIRST, LAST, REF, CONTROL, SOURCE, MASK},
          generator="synthetic",
          fps=None, frames=FrameRule(1, 0, None), size_multiple=2, default_size=None,
          max_pixels=3840 * 2160, gpus=0, gpu_memory_gb=0.0, cost_per_frame_step=0.001,
          load_seconds=0.0, default_steps=1, default_guidance=0.0, text_tokens=None,
          splits=True,
          notes="deterministic test pattern with configurable timing and injected faults; on "
                "a gang it runs as fast as the published context-parallel speed-up"),
    # Wan 2.1
    # Text-to-video weights also do video-to-video (WanVideoToVideoPipeline on the same parts).
    _spec("wan2.1-t2v-1.3b", "wan2.1-1.3b", "WanPipeline", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
          {T, SOURCE}, gpu_memory_gb=12.0, max_pixels=832 * 480, **_wan_split(12, 9.0)),
    # VACE: a control video (its `video` with a white mask) or a masked source, keyframes and
    # reference images, in one call.
    _spec("wan2.1-vace-1.3b", "wan2.1-1.3b", "WanVACEPipeline", "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
          {T, FIRST, LAST, REF, CONTROL, MASK}, gpu_memory_gb=14.0, max_pixels=832 * 480,
          cost_per_frame_step=_WAN_1_3B_COST * 1.3),  # WanVACETransformer3DModel: no split
    _spec("wan2.1-t2v-14b", "wan2.1-14b", "WanPipeline", "Wan-AI/Wan2.1-T2V-14B-Diffusers",
          {T, SOURCE},
          default_size=(1280, 720), gpu_memory_gb=70.0, cost_per_frame_step=_WAN_14B_COST,
          load_seconds=90.0, **_wan_split(40, 40.0)),
    _spec("wan2.1-i2v-14b-720p", "wan2.1-14b", "WanImageToVideoPipeline",
          "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers", {T, FIRST}, default_size=(1280, 720),
          gpu_memory_gb=75.0, cost_per_frame_step=_WAN_14B_COST * 1.05, load_seconds=100.0,
          **_wan_split(40, 42.0)),
    _spec("wan2.1-i2v-14b-480p", "wan2.1-14b-480p", "WanImageToVideoPipeline",
          "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", {T, FIRST}, gpu_memory_gb=60.0,
          cost_per_frame_step=_WAN_14B_COST * 1.05 * (832 * 480) / (1280 * 720), load_seconds=100.0,
          **_wan_split(40, 42.0)),
    _spec("wan2.1-flf2v-14b-720p", "wan2.1-14b", "WanImageToVideoPipeline",
          "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers", {T, FIRST, LAST}, default_size=(1280, 720),
          gpu_memory_gb=75.0, cost_per_frame_step=_WAN_14B_COST * 1.05, load_seconds=100.0,
          **_wan_split(40, 42.0)),
    _spec("wan2.1-vace-14b", "wan2.1-14b", "WanVACEPipeline", "Wan-AI/Wan2.1-VACE-14B-diffusers",
          {T, FIRST, LAST, REF, CONTROL, MASK}, default_size=(1280, 720), gpu_memory_gb=78.0,
          cost_per_frame_step=_WAN_14B_COST * 1.3, load_seconds=110.0),
    # Wan 2.2: two 14B experts (high and low noise), only one resident at a time.
    _spec("wan2.2-t2v-a14b", "wan2.2-a14b", "WanPipeline", "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
          {T}, default_size=(1280, 720), gpu_memory_gb=80.0, cost_per_frame_step=_WAN_14B_COST,
          load_seconds=150.0, default_steps=40, default_guidance=4.0,
          extra={"boundary_ratio": 0.875}, **_wan_split(40, 42.0)),
    _spec("wan2.2-i2v-a14b", "wan2.2-a14b", "WanImageToVideoPipeline",
          "Wan-AI/Wan2.2-I2V-A14B-Diffusers", {T, FIRST}, default_size=(1280, 720),
          gpu_memory_gb=80.0, cost_per_frame_step=_WAN_14B_COST, load_seconds=150.0,
          default_steps=40, default_guidance=3.5, extra={"boundary_ratio": 0.9},
          **_wan_split(40, 44.0)),
    # Wan 2.2 Animate: a character's reference image performs a recorded performance (its pose
    # and face videos); `replace` puts the character into the performance's own plate. It
    # windows long performances itself (77 frames, one carried over), so any frame count; 30
    # fps as its authors render. Cost and memory as Wan 2.2 14B's (estimates).
    _spec("wan2.2-animate-14b", "wan2.2-animate", "WanAnimatePipeline",
          "Wan-AI/Wan2.2-Animate-14B-Diffusers", {T, PERFORMANCE}, fps=30.0,
          frames=FrameRule(1, 0, None), default_size=(1280, 720), gpu_memory_gb=80.0,
          cost_per_frame_step=_WAN_14B_COST * 1.1, load_seconds=150.0, default_steps=20,
          default_guidance=1.0, makes_stills=False),
    _spec("wan2.2-ti2v-5b", "wan2.2-5b", "WanPipeline", "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
          {T, FIRST}, fps=24.0, frames=FrameRule(4, 1, 121), size_multiple=32,
          default_size=(1280, 704), max_pixels=1280 * 704, gpu_memory_gb=24.0,
          cost_per_frame_step=_WAN_1_3B_COST * 1.6, load_seconds=45.0, default_guidance=5.0,
          extra={"expand_timesteps": True}, splits=True, attention_heads=24, tokens=(4, 32),
          resident_memory_gb=21.0),
    # LTX-Video: one condition pipeline does text, first image, last image and keyframes.
    _spec("ltx-video", "ltx-video", "LTXConditionPipeline", "Lightricks/LTX-Video-0.9.5",
          {T, FIRST, LAST}, fps=24.0, frames=FrameRule(8, 1, 257), size_multiple=32,
          default_size=(768, 512), max_pixels=1216 * 704, gpu_memory_gb=16.0,
          # about 2 s for 121 frames at 768x512 with 50 steps on one H100 (published)
          cost_per_frame_step=2.0 / (121 * 50), load_seconds=20.0, default_steps=50,
          default_guidance=3.0, text_tokens=256, splits=True, attention_heads=32, tokens=(8, 32),
          resident_memory_gb=13.0),
    # LTX-2: picture and sound in one pass (LTX2Pipeline returns video and a stereo waveform,
    # 24 kHz from its vocoder). Frames 8k+1 (other counts are silently rounded down by the
    # pipeline, so the plan asks for exact ones), sizes in multiples of 32. The cost and memory
    # are estimates, not measurements: 19B parameters (Lightricks' model card) in bf16 need
    # about 40 GB before activations; generation assumed about Wan 14B's rate per frame-step.
    _spec("ltx-2", "ltx-2", "LTX2Pipeline", "Lightricks/LTX-2", {T}, fps=24.0,
          frames=FrameRule(8, 1, 257), size_multiple=32, default_size=(768, 512),
          max_pixels=1280 * 736, gpu_memory_gb=48.0, cost_per_frame_step=_WAN_14B_COST,
          load_seconds=90.0, default_steps=40, default_guidance=3.0, text_tokens=1024,
          makes_sound=True, splits=True, attention_heads=32, tokens=(8, 32),
          resident_memory_gb=40.0),
    # CogVideoX
    _spec("cogvideox-5b", "cogvideox-5b", "CogVideoXPipeline", "THUDM/CogVideoX-5b", {T},
          fps=8.0, frames=FrameRule(48, 1, 49), size_multiple=8, default_size=(720, 480),
          max_pixels=720 * 480, gpu_memory_gb=24.0, cost_per_frame_step=180 / (49 * 50),
          load_seconds=40.0, default_steps=50, default_guidance=6.0, text_tokens=226, makes_stills=False),
    _spec("cogvideox-5b-i2v", "cogvideox-5b", "CogVideoXImageToVideoPipeline",
          "THUDM/CogVideoX-5b-I2V", {T, FIRST}, fps=8.0, frames=FrameRule(48, 1, 49),
          size_multiple=8, default_size=(720, 480), max_pixels=720 * 480, gpu_memory_gb=24.0,
          cost_per_frame_step=180 / (49 * 50), load_seconds=40.0, default_steps=50,
          default_guidance=6.0, fixed_size=True, text_tokens=226, makes_stills=False),
    # HunyuanVideo
    _spec("hunyuanvideo", "hunyuanvideo", "HunyuanVideoPipeline",
          "hunyuanvideo-community/HunyuanVideo", {T}, fps=24.0, frames=FrameRule(4, 1, 129),
          default_size=(1280, 720), gpu_memory_gb=60.0, cost_per_frame_step=1800 / (129 * 50),
          load_seconds=120.0, default_steps=50, default_guidance=6.0, text_tokens=256),
    # HunyuanVideo 1.5 (8.3B): 4k+1 frames up to 121, sizes in multiples of 16; guidance is its
    # pipeline's guider component, not a call argument; image-to-video renders the size bucket
    # of its image's aspect (fixed: the plan gives the bucket's own size). Hub ids are the
    # diffusers conversions; memory and cost are estimates (8.3B bf16 plus a 7B text encoder),
    # not measurements.
    _spec("hunyuanvideo-1.5", "hunyuanvideo-1.5", "HunyuanVideo15Pipeline",
          "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v", {T}, fps=24.0,
          frames=FrameRule(4, 1, 121), default_size=(848, 480), max_pixels=1280 * 720,
          gpu_memory_gb=40.0, cost_per_frame_step=1800 / (129 * 50) * 0.6, load_seconds=90.0,
          default_steps=50, default_guidance=6.0, text_tokens=1000),
    _spec("hunyuanvideo-1.5-i2v", "hunyuanvideo-1.5", "HunyuanVideo15ImageToVideoPipeline",
          "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v", {T, FIRST}, fps=24.0,
          frames=FrameRule(4, 1, 121), default_size=(848, 480), max_pixels=1280 * 720,
          gpu_memory_gb=40.0, cost_per_frame_step=1800 / (129 * 50) * 0.6, load_seconds=90.0,
          default_steps=50, default_guidance=6.0, text_tokens=1000, fixed_size=True),
    # SkyReels-V2 diffusion forcing: long videos natively, in overlapping windows.
    _spec("skyreels-v2-df-1.3b", "skyreels-v2-1.3b", "SkyReelsV2DiffusionForcingPipeline",
          "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers", {T, FIRST}, fps=24.0,
          frames=FrameRule(4, 1, 737), default_size=(960, 544), max_pixels=960 * 544,
          gpu_memory_gb=16.0, cost_per_frame_step=_WAN_1_3B_COST * 1.3, load_seconds=30.0,
          default_steps=30, default_guidance=6.0, makes_stills=False),
    # Stable Video Diffusion: image-to-video only, no text.
    _spec("svd-xt", "svd", "StableVideoDiffusionPipeline",
          "stabilityai/stable-video-diffusion-img2vid-xt", {FIRST}, fps=7.0,
          frames=FrameRule(1, 0, 25), size_multiple=8, default_size=(1024, 576),
          max_pixels=1024 * 576, gpu_memory_gb=20.0, cost_per_frame_step=60 / (25 * 25),
          load_seconds=20.0, default_steps=25, default_guidance=3.0, text_tokens=None, makes_stills=False),
]

CATALOG: dict[str, ModelSpec] = {spec.name: spec for spec in _ENTRIES}

# A family name resolves to its first variant that has every ability a shot needs; variants are
# listed cheapest first, so a plain text shot never pays for a reference-conditioned model.
FAMILIES: dict[str, tuple[str, ...]] = {}
for _s in _ENTRIES:
    FAMILIES.setdefault(_s.family, ())
    FAMILIES[_s.family] += (_s.name,)
# Convenience aliases studios type: "wan" is the small Wan, "wan-14b" the large one.
FAMILIES["wan"] = FAMILIES["wan2.1-1.3b"]
FAMILIES["wan-14b"] = FAMILIES["wan2.1-14b"]
FAMILIES["ltx"] = FAMILIES["ltx-video"]
FAMILIES["cogvideox"] = FAMILIES["cogvideox-5b"]


def known_model_names() -> list[str]:
    names = set(CATALOG) | set(FAMILIES)
    return sorted(names)


def model_spec(name: str) -> ModelSpec:
    """The catalog entry for an exact model name; KeyError if there is none."""
    return CATALOG[name]


def resolve_model(name: str, needs: set[Ability]) -> tuple[ModelSpec | None, list[ModelSpec]]:
    """The variant of `name` (a model or a family) with every ability in `needs`.

    A named model that lacks an ability yields its cheapest sibling in the same family that has
    it (the caller notes the switch); a family yields its cheapest fitting variant.
    Returns (chosen or None, candidates considered) so callers can say what would work.
    """
    if name in CATALOG:
        spec = CATALOG[name]
        if needs <= spec.abilities:
            return spec, [spec]
        siblings = [CATALOG[n] for n in FAMILIES.get(spec.family, ()) if needs <= CATALOG[n].abilities]
        return (siblings[0] if siblings else None), [spec, *siblings]
    variants = [CATALOG[n] for n in FAMILIES.get(name, ())]
    for spec in variants:
        if needs <= spec.abilities:
            return spec, variants
    return None, variants
