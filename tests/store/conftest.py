"""Fixtures for the store tests: a real S3 service (moto's server mode on loopback), the
fault-injecting proxy, and a `store` fixture that runs a test against every backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from previz.store import Store, open_store

from .store_fault_proxy import FaultProxy
from .store_support import raw_client


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_url: str) -> pytest.MonkeyPatch:
    """Dummy credentials and the moto endpoint in the environment, nothing from the host."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "PREVIZ_S3_")) or name.lower() in ("http_proxy", "https_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config-absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials-absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return monkeypatch


@pytest.fixture
def bucket(aws_env: pytest.MonkeyPatch, moto_url: str) -> str:
    name = f"previz-{uuid.uuid4().hex[:12]}"
    raw_client(moto_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def make_proxy(moto_url: str) -> Iterator[Callable[..., FaultProxy]]:
    started: list[FaultProxy] = []

    def make(**options) -> FaultProxy:
        proxy = FaultProxy(moto_url, **options).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def open_s3(aws_env: pytest.MonkeyPatch, bucket: str) -> Callable[..., Store]:
    """Open `s3://<bucket>/previz` through `endpoint` (moto itself by default)."""

    def open_(endpoint: str | None = None, prefix: str = "previz", **env: str) -> Store:
        if endpoint:
            aws_env.setenv("AWS_ENDPOINT_URL", endpoint)
        for name, value in env.items():
            aws_env.setenv(name, value)
        return open_store(f"s3://{bucket}/{prefix}")

    return open_


@pytest.fixture(params=["local", "s3"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "renders")
    bucket = request.getfixturevalue("bucket")
    return f"s3://{bucket}/previz"


@pytest.fixture
def store(store_uri: str) -> Store:
    return open_store(store_uri)


@pytest.fixture
def media(tmp_path: Path) -> Callable[[str, int], Path]:
    """Write a file of `size` pseudo-random bytes (seeded by its name)."""

    def make(name: str, size: int = 4096) -> Path:
        import random

        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random.Random(name).randbytes(size))
        return path

    return make
