"""Wan 2.1 T2V 1.3B-shaped pipeline, random weights, on a GPU: seconds per denoising step, peak
memory, and what a cache hook and torch.compile change (issue 4). A benchmark, not a test.

    python benchmarks/wan_gpu.py                        # CUDA, 832x480, 81 frames, 10 steps
    python benchmarks/wan_gpu.py --variants base,compile --steps 20 --weights /tmp/wan13b
    python benchmarks/wan_gpu.py --tiny --device cpu    # checks this script on any machine
    python benchmarks/wan_gpu.py --variants base --gang 0   # also on every GPU here, one gang

1. build the pipeline at Wan2.1-T2V-1.3B's published shapes (transformer: 30 layers, 12 heads of
   128, FFN 8960, text width 4096; the Wan VAE at its real size) with random weights, and save
   it with save_pretrained (kept in --weights DIR between runs). The text encoder is a one-layer
   UMT5 of the real width: it runs once a shot, so its size does not move seconds per step;
2. plan a one-shot storyboard at 832x480, 5 s at 24 fps: the model call is 81 frames at 16 fps;
3. for each variant, load the folder through previz's own generator (`from_pretrained`, bf16 on
   the GPU), render the shot once at 2 steps to warm up (compile happens here), then timed.

Prints one row a variant: load seconds, seconds per step (median), whole call, peak GPU memory.
With --gang N (0: every GPU of the machine), the first variant again on a gang of N processes,
one per GPU, that split the model with diffusers' context parallelism (Ulysses over NCCL) as a
render's gang does (previz's generator `split`): seconds per step, the speed-up over one GPU, and
the largest difference of its frames from the one-GPU frames (0-255).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "generate"))  # the word-level tokenizer of the tests

MODEL = "wan2.1-t2v-1.3b"
VARIANTS = {
    "base": {},
    "first_block": {"cache": "first_block:0.05"},
    "taylorseer": {"cache": "taylorseer:5"},
    "compile": {"compile": True},
    "first_block+compile": {"cache": "first_block:0.05", "compile": True},
}
REAL = dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30,
            text_dim=4096, umt5_width=4096)
TINY = dict(num_attention_heads=2, attention_head_dim=12, ffn_dim=32, num_layers=2,
            text_dim=32, umt5_width=32)


def build_pipeline(folder: Path, shape: dict, tiny: bool) -> Path:
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from tiny_pipelines import tokenizer
    from transformers import UMT5Config, UMT5EncoderModel

    if (folder / "model_index.json").exists():
        return folder
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=shape["num_attention_heads"],
        attention_head_dim=shape["attention_head_dim"], in_channels=16, out_channels=16,
        text_dim=shape["text_dim"], freq_dim=256, ffn_dim=shape["ffn_dim"],
        num_layers=shape["num_layers"], cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=1e-6)
    width = shape["umt5_width"]
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=128, d_model=width, d_ff=64, d_kv=64, num_heads=width // 64 or 1,
        num_layers=1, relative_attention_num_buckets=32, dropout_rate=0.0, pad_token_id=0,
        eos_token_id=1, decoder_start_token_id=0)).eval()
    vae = (AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])
           if tiny else AutoencoderKLWan())  # the defaults are Wan 2.1's VAE
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=3.0)  # Wan's 480p setting
    pipe = WanPipeline(tokenizer=tokenizer(), text_encoder=text_encoder, vae=vae,
                       scheduler=scheduler, transformer=transformer)
    pipe.to(torch.bfloat16)
    pipe.vae.to(torch.float32)  # Wan keeps its VAE in fp32
    pipe.save_pretrained(folder)
    return folder


def shot_task(folder: Path, weights: Path, steps: int, tiny: bool):
    from previz.plan import plan_from_storyboard
    from previz.storyboard import load_storyboard

    size, frames = ("160x96", "12f") if tiny else ("832x480", "120f")
    board = folder / "wan_gpu.yaml"
    board.write_text(textwrap.dedent(f"""\
        previz: 1
        project: BENCH
        sequence: SQ010
        fps: 24
        resolution: {size}
        defaults: {{model: {MODEL}, steps: {steps}, seed: 1234, guidance: 5.0}}
        weights: {{{MODEL}: "{weights}"}}
        shots:
          - id: SH0010
            duration: {frames}
            prompt: the old keeper climbs the last steps into the lamp room, storm outside
            camera: {{move: dolly_in, size: wide}}
    """))
    return plan_from_storyboard(load_storyboard(board)).tasks()[0]


def run_variant(task, weights: Path, device: str, options: dict,
                gang: tuple[int, int] | None = None) -> dict:
    import torch

    from previz.catalog import model_spec
    from previz.generate import create_generator

    cuda = device.startswith("cuda")
    started = time.perf_counter()
    generator = create_generator(model_spec(MODEL), weights=str(weights),
                                 options={**options, "allow_cpu": not cuda})
    generator.load(device)
    if gang is not None:
        generator.split(*gang)
    load_seconds = time.perf_counter() - started
    try:
        generator.generate(task.model_copy(update={"steps": 2}))  # warm-up: compiles
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        stamps: list[float] = []
        started = time.perf_counter()
        result = generator.generate(task, progress=lambda done, total: stamps.append(
            time.perf_counter()))
        if cuda:
            torch.cuda.synchronize()
        whole = time.perf_counter() - started
        steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        return {"load_s": load_seconds, "s_per_step": statistics.median(steps) if steps else
                whole, "call_s": whole, "frames": len(result.frames),
                "frames_array": result.frames,
                "size": f"{result.frames.shape[2]}x{result.frames.shape[1]}",
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
                "applied": result.record.get("options", {})}
    finally:
        generator.release()
        if cuda:
            torch.cuda.empty_cache()


def gang_member(rank: int, gang: int, port: int, task_json: str, weights: str, device: str,
                options: dict, out: str) -> None:
    """One process of a gang (torch.multiprocessing.spawn): rank 0 writes its row and frames."""
    import json

    import numpy as np
    import torch
    import torch.distributed as distributed

    from previz.plan.types import ShotTask

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(rank)
    elif torch.accelerator.device_count() == 0:
        # Checking the script on CPUs only: diffusers places rank r on device
        # r % torch.accelerator.device_count(), 0 without an accelerator (as in tests/engine).
        torch.accelerator.device_count = lambda: 1
    distributed.init_process_group("nccl" if cuda else "gloo",
                                   init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                   world_size=gang)
    try:
        task = ShotTask.model_validate_json(task_json)
        row = run_variant(task, Path(weights), f"cuda:{rank}" if cuda else device, options,
                          gang=(gang, rank))
        if rank == 0:
            np.save(Path(out) / "frames.npy", row.pop("frames_array"))
            Path(out, "row.json").write_text(json.dumps(row, default=str))
    finally:
        distributed.destroy_process_group()


def run_gang(task, weights: Path, device: str, options: dict, gang: int) -> dict:
    import json
    import socket

    import numpy as np
    import torch.multiprocessing as multiprocessing

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="pvz-gang-") as out:
        multiprocessing.spawn(gang_member, nprocs=gang, args=(
            gang, port, task.model_dump_json(), str(weights), device, options, out))
        row = json.loads(Path(out, "row.json").read_text())
        row["frames_array"] = np.load(Path(out) / "frames.npy")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None,
                        help="where the random-weight pipeline is built (kept between runs)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variants", default="base,first_block,taylorseer,compile")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes: check the script")
    parser.add_argument("--gang", type=int, default=None, metavar="N",
                        help="the first variant on a gang of N GPUs too (0: all of them)")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("wan_gpu: no CUDA device here — run it on a GPU machine, or pass "
                 "--tiny --device cpu to check the script")
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        sys.exit(f"wan_gpu: unknown variant {', '.join(unknown)} — use {', '.join(VARIANTS)}")
    scratch = Path(tempfile.mkdtemp(prefix="pvz-wan-"))
    weights = args.weights or scratch / "weights"
    started = time.perf_counter()
    build_pipeline(weights, TINY if args.tiny else REAL, args.tiny)
    print(f"pipeline at {weights} ({time.perf_counter() - started:.1f} s to build or find)")
    task = shot_task(scratch, weights, args.steps, args.tiny)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"{MODEL} shapes{' (tiny)' if args.tiny else ''}: {task.width}x{task.height}, "
          f"{task.num_frames} frames at {task.fps:g} fps, {task.steps} steps, on {device_name}, "
          f"torch {torch.__version__}")
    rows = {}
    for name in names:
        row = rows[name] = run_variant(task, weights, args.device, VARIANTS[name])
        ratio = row["s_per_step"] / rows[names[0]]["s_per_step"]
        print(f"{name:<20} load {row['load_s']:6.1f} s  {row['s_per_step']:7.3f} s/step "
              f"({ratio:4.2f}x {names[0]})  call {row['call_s']:7.1f} s  peak "
              f"{row['peak_gib']:5.1f} GiB  {row['frames']} frames {row['size']}  "
              f"applied {row['applied']}")
    if args.gang is not None:
        gang = args.gang or (torch.cuda.device_count() if args.device.startswith("cuda") else 2)
        first = rows[names[0]]
        row = run_gang(task, weights, args.device, VARIANTS[names[0]], gang)
        difference = int(abs(row.pop("frames_array").astype(int)
                             - first["frames_array"].astype(int)).max())
        print(f"{names[0]} on {gang} GPUs (Ulysses {gang}): load {row['load_s']:6.1f} s  "
              f"{row['s_per_step']:7.3f} s/step ({first['s_per_step'] / row['s_per_step']:4.2f}x "
              f"faster than 1)  call {row['call_s']:7.1f} s  peak {row['peak_gib']:5.1f} GiB "
              f"per GPU  frames differ from 1 GPU's by at most {difference}/255")


if __name__ == "__main__":
    main()
