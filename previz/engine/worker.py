"""Warm workers: long-lived Ray actors that each hold a loaded generator on their GPU(s).

A worker renders one task at a time and hands the frames to a CPU task on its own node,
which encodes and publishes the take; the worker goes straight on to its next task, so encoding
and uploading never sit between two shots on the GPU. Frames stay on the node (they travel
through the node's shared-memory object store, never raw across the network).

A shot on several GPUs runs on a gang: one worker per GPU of one node (a placement group). `join`
tells each member where the gang meets; a generator that declares it needs one forms the
torch.distributed group there (NCCL on GPUs, gloo on CPUs) when it is first loaded. Every member
loads the model and runs each task together (the generator's `split` divides the work); rank 0
reports progress and publishes the take.
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from previz.engine.publish import (
    MEDIA_NAME,
    last_frame_of,
    publish_encoded,
    publish_output,
    publishes_as_encoded,
)
from previz.generate.registry import generator_declaration
from previz.generate.types import fit_image
from previz.plan.types import Conditioning, ShotTask, TakePlan

__all__ = ["RenderWorker", "ProgressBoard", "Rendered", "GANG_TIMEOUT_SECONDS", "CONTROL_NAME",
           "PREVIEW_NAME"]

VIDEO_ROLES = frozenset({"control_video", "source_video", "mask", "pose_video", "face_video",
                         "background_video"})
# A control video kept in the store: its exact frames (what the model was given), and an H.264
# preview of them for the review page.
CONTROL_NAME, PREVIEW_NAME = "control.npz", "preview.mp4"

# How long a gang member waits in a collective for the others: past it, a member that died or
# hung has cost the gang its task (the driver has usually stopped the gang well before).
GANG_TIMEOUT_SECONDS = 600


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Denoising progress from every worker, polled by the driver."""

    def __init__(self) -> None:
        self.steps: dict[str, tuple[int, int, float]] = {}
        self.began: dict[str, float] = {}  # when generation began (after any model load)

    def begin(self, task_key: str) -> None:
        self.began[task_key] = time.time()

    def update(self, task_key: str, step: int, total: int) -> None:
        self.steps[task_key] = (step, total, time.time())

    def read(self) -> tuple[dict[str, float], dict[str, tuple[int, int, float]]]:
        """(when each task's generation began, its last (step, total, when))."""
        return dict(self.began), dict(self.steps)


@dataclass(frozen=True)
class Rendered:
    """What a worker says of a task it generated."""

    started: float  # when generation began (after any model load)
    finished: float
    load_seconds: float
    node: str
    # The encode task publishing it, in a list so Ray does not wait on it; empty when the worker
    # published the take itself.
    publish: list[Any]
    ledger_error: str | None = None  # why the row of a take it published itself is missing


class RenderWorker:
    """Holds one loaded generator; switches models only when the driver sends another model."""

    def __init__(self, worker_id: str, store_uri: str, worker_options: dict[str, Any],
                 progress: Any = None, run_id: str = "", rank: int = 0, gang: int = 1):
        self.worker_id = worker_id
        self.rank, self.gang = rank, gang
        self.rendezvous: tuple[str, int] | None = None
        self.run_id = run_id
        self.store_uri = store_uri
        self.worker_options = dict(worker_options)
        self.progress = progress
        self.node_id = ray.get_runtime_context().get_node_id()
        self.generator: Any = None
        self.model: str | None = None
        self.model_options: dict[str, Any] = {}
        self._store = None

    def identity(self) -> dict[str, Any]:
        identity = {"worker": self.worker_id, "pid": os.getpid(), "node": self.node_id,
                    "host": socket.gethostname(), "gpus": ray.get_gpu_ids(), "rank": self.rank}
        if self.gang > 1 and self.rank == 0:
            # where the gang meets: a free port on this member's node
            address = ray.util.get_node_ip_address()
            with socket.socket() as probe:
                probe.bind((address, 0))
                identity["rendezvous"] = (address, probe.getsockname()[1])
        return identity

    def join(self, address: str, port: int) -> int:
        """Where the gang meets (rank 0's node and port): every member is told before work."""
        self.rendezvous = (address, port)
        return self.rank

    def _form_process_group(self) -> None:
        """The gang's torch.distributed group: every member calls this as it loads the same
        model for the same task, so they all arrive together."""
        from datetime import timedelta

        import torch
        import torch.distributed as distributed

        if distributed.is_initialized():
            return
        backend = "nccl" if ray.get_gpu_ids() and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(0)  # Ray shows each member only its own GPU
        address, port = self.rendezvous
        distributed.init_process_group(
            backend, init_method=f"tcp://{address}:{port}", rank=self.rank,
            world_size=self.gang, timeout=timedelta(seconds=GANG_TIMEOUT_SECONDS))

    def render(self, task_json: str, take_json: str, attempt: int, images: dict[str, Any],
               extra_options: dict[str, Any]) -> Rendered:
        """Generate one task and hand its frames to a publish task on this node."""
        task = ShotTask.model_validate_json(task_json)
        options = {**self.worker_options, **task.options, **extra_options}
        load_seconds = self._ensure_loaded(task, options)
        started = time.time()

        reports = self.progress is not None and self.rank == 0

        def on_step(step: int, total: int) -> None:
            if reports:
                self.progress.update.remote(task.key, step, total)

        if reports:
            self.progress.begin.remote(task.key)

        take = TakePlan.model_validate_json(take_json)
        timings = {"started": started, "load_seconds": load_seconds}
        self._controls: list[dict[str, Any]] = []  # the control videos this task was given
        if self.generator.declaration.encodes_own_output and publishes_as_encoded(task, take):
            # A CPU generator that encodes as it draws (the draft): the encode is its work, so
            # it publishes here rather than handing raw frames to another process.
            with tempfile.TemporaryDirectory(prefix="previz-take-") as folder:
                media = Path(folder) / MEDIA_NAME
                drawn = self.generator.render_take(
                    task, media, images=self._image_source(images, task), progress=on_step,
                    attempt=attempt)
                finished = time.time()
                published = publish_encoded(
                    self._open_store(), task, take, media,
                    self._record(drawn.record, attempt, options, timings, finished),
                    drawn.sound)
            return Rendered(started, finished, load_seconds, self.node_id, publish=[],
                            ledger_error=published["ledger_error"])
        result = self.generator.generate(
            task, images=self._image_source(images, task), progress=on_step, attempt=attempt)
        finished = time.time()
        if self.rank:  # the same frames as rank 0's, which publishes them
            return Rendered(started, finished, load_seconds, self.node_id, publish=[])
        record = self._record(result.record, attempt, options, timings, finished)
        publish = publish_output.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(self.node_id, soft=False),
        ).remote(self.store_uri, task_json, take_json, result.frames, result.fps, record,
                 result.sound)
        return Rendered(started, finished, load_seconds, self.node_id, publish=[publish])

    def _record(self, generated: dict[str, Any], attempt: int, options: dict[str, Any],
                timings: dict[str, Any], finished: float) -> dict[str, Any]:
        # The run and attempt: what publishes the take writes its ledger row from them.
        return {
            **generated, "run_id": self.run_id, "worker": self.worker_id, "node": self.node_id,
            "host": socket.gethostname(), "attempt": attempt, "finished": finished,
            "generate_seconds": finished - timings["started"],
            "load_seconds": timings["load_seconds"],
            "gpus": self.gang if self.gang > 1 else len(ray.get_gpu_ids()),
            "options": {k: v for k, v in options.items() if k != "faults"},
            **({"controls": self._controls} if self._controls else {}),
        }

    def _ensure_loaded(self, task: ShotTask, options: dict[str, Any]) -> float:
        declared = generator_declaration(task.generator).load_options
        load_options = {k: v for k, v in options.items() if k in declared}
        if self.model == task.model and self.model_options == load_options:
            return 0.0
        from previz.catalog import model_spec
        from previz.generate import create_generator

        if self.generator is not None:
            self.generator.release()
            self.generator = None
        started = time.time()
        generator = create_generator(model_spec(task.model), weights=task.weights,
                                     options=options)
        if self.gang > 1 and generator.declaration.needs_process_group:
            self._form_process_group()
        generator.load(self._device(task))
        if self.gang > 1:
            generator.split(self.gang, self.rank)
        self.generator, self.model, self.model_options = generator, task.model, load_options
        return time.time() - started

    def _device(self, task: ShotTask) -> str:
        # Only generators that compute on a GPU need torch; importing it for the others costs
        # seconds per worker.
        if (generator_declaration(task.generator).computes_on_gpu and task.gpus
                and ray.get_gpu_ids()):
            try:
                import torch

                if torch.cuda.is_available():
                    return "cuda"
            except ImportError:
                pass
        return "cpu"

    def _image_source(self, images: dict[str, Any], task: ShotTask):
        """Conditioning images: storyboard files shipped by the driver, or the last frame of an
        earlier take or segment, read back from the store; and videos (a layout, a mask) as the
        task's frames (`_video`)."""
        from PIL import Image

        def source(condition: Conditioning):
            if condition.video or condition.role in VIDEO_ROLES:
                return self._video(condition, task, images)
            if condition.sha256 and condition.sha256 in images:
                data = ray.get(images[condition.sha256])
                return Image.open(io.BytesIO(data)).convert("RGB")
            if condition.from_key:
                return self._last_frame(condition.from_key)
            raise LookupError(f"no image for {condition.role} {condition.name or ''}")

        return source

    def _video(self, condition: Conditioning, task: ShotTask, images: dict[str, Any]):
        """A layout's control or source frames, or a mask's, for this task: retimed, sized and
        extracted (generate/controls.py) once, then kept in the store under their content key
        (`controls/`: the exact frames, and a preview for people) and read back from there.
        A still mask is one picture."""
        import numpy as np
        from PIL import Image

        from previz.generate.controls import (
            control_frames,
            control_key,
            mask_frames,
            video_frames,
        )

        if condition.role == "mask" and not condition.video:
            still = Image.open(io.BytesIO(ray.get(images[condition.sha256]))).convert("RGB")
            # (fitted as conditioning images and the layouts are: cover, centre crop)
            fitted = np.asarray(fit_image(still, task.width, task.height))[None]
            return Image.fromarray(mask_frames(fitted)[0])
        control = condition.control or ("mask" if condition.role == "mask" else "video")
        key = control_key(condition.sha256 or condition.from_key or "",
                          f"{control}:{condition.extractor}" if condition.extractor else control,
                          task.fps, task.width, task.height, condition.first_frame,
                          task.num_frames)
        store = self._open_store()
        folder = f"controls/{key[:2]}/{key}"
        if store.exists(f"{folder}/{CONTROL_NAME}"):
            frames = np.load(io.BytesIO(store.get_bytes(f"{folder}/{CONTROL_NAME}")))["frames"]
        else:
            with tempfile.TemporaryDirectory(prefix="previz-layout-") as scratch:
                path = Path(scratch) / "source"
                if condition.from_key:  # the shot's animatic, from the store
                    from previz.store.takes import fetch_take_media

                    path = fetch_take_media(store, condition.from_key, path.with_suffix(".mp4"))
                else:
                    path.write_bytes(ray.get(images[condition.sha256]))
                raw = video_frames(path, task.fps, task.width, task.height,
                                   condition.first_frame, task.num_frames)
                frames = (mask_frames(raw) if control == "mask"
                          else control_frames(raw, control, condition.extractor))
                if self.rank == 0:
                    self._keep_control(store, folder, frames, task)
        self._controls.append({"role": condition.role, "control": control,
                               "key": key, "preview": f"{folder}/{PREVIEW_NAME}"})
        return [Image.fromarray(frame) for frame in frames]

    @staticmethod
    def _keep_control(store, folder: str, frames, task: ShotTask) -> None:
        import numpy as np

        from previz.media.encode import encode_take

        buffer = io.BytesIO()
        np.savez_compressed(buffer, frames=frames)
        with tempfile.TemporaryDirectory(prefix="previz-control-") as scratch:
            preview = Path(scratch) / PREVIEW_NAME
            encode_take(frames, Fraction(task.fps).limit_denominator(1001), preview,
                        width=task.width, height=task.height)
            store.put_file(f"{folder}/{PREVIEW_NAME}", preview, create_only=True)
        store.put_bytes(f"{folder}/{CONTROL_NAME}", buffer.getvalue(), create_only=True)

    def _last_frame(self, key: str):
        return last_frame_of(self._open_store(), key)

    def _open_store(self):
        if self._store is None:
            from previz.store import open_store

            self._store = open_store(self.store_uri)
        return self._store
