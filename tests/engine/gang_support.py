"""The one shim diffusers' context parallelism needs on a CPU, for the tests' gangs only.

`ModelMixin._resolve_parallel_config` places rank r on device r % torch.accelerator.
device_count(), which is 0 on a machine without an accelerator (ZeroDivisionError). Counting
the CPU as one device is all gloo needs; on GPUs previz uses diffusers as it is. Installed in
every worker process of the test's Ray job as its `worker_process_setup_hook`.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNTIME_ENV = {"worker_process_setup_hook": "gang_support.count_the_cpu_as_a_device",
               "env_vars": {"PYTHONPATH": str(HERE)}}


def count_the_cpu_as_a_device() -> None:
    import torch

    if torch.accelerator.device_count() == 0:
        torch.accelerator.device_count = lambda: 1
