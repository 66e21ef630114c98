"""S3 specifics: client settings, multipart uploads, the conditional-write probe and its
fallback, and each failure as one line naming the store and the fix."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from previz.errors import EXIT_FAILURE, PrevizError
from previz.store import (
    AlreadyExists,
    StoreError,
    WriteConflict,
    latest_version,
    open_store,
    publish_cut,
)
from previz.store.s3 import S3Settings, S3Store

from .store_support import raw_client

MiB = 1024 * 1024


def test_client_is_tuned_for_s3_compatible_services(open_s3) -> None:
    store = open_s3()
    config = store.client.meta.config
    assert config.s3["addressing_style"] == "path"
    assert config.signature_version == "s3v4"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.retries["mode"] == "standard"
    assert store.endpoint.startswith("http://127.0.0.1")


def test_settings_from_environment() -> None:
    settings = S3Settings.from_environment(
        {
            "AWS_MAX_ATTEMPTS": "3",
            "PREVIZ_S3_CONNECT_TIMEOUT": "1.5",
            "PREVIZ_S3_CONDITIONAL_WRITES": "off",
            "PREVIZ_S3_MULTIPART_CHUNK_MB": "8",
        }
    )
    assert (settings.max_attempts, settings.connect_timeout_s) == (3, 1.5)
    assert settings.conditional_writes == "off"
    assert settings.transfer.multipart_chunksize == 8 * MiB
    with pytest.raises(StoreError, match="AWS_MAX_ATTEMPTS='many' is not a positive number"):
        S3Settings.from_environment({"AWS_MAX_ATTEMPTS": "many"})
    with pytest.raises(StoreError, match="at least 5 MiB"):
        S3Settings.from_environment({"PREVIZ_S3_MULTIPART_CHUNK_MB": "1"})


def small_parts(**overrides) -> S3Settings:
    transfer = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2
    )
    return S3Settings(transfer=transfer, **overrides)


@pytest.mark.parametrize("conditional", ["on", "off"])
def test_multipart_upload_create_only(
    aws_env, bucket: str, moto_url: str, media, tmp_path: Path, conditional: str
) -> None:
    store = S3Store(bucket, "previz", small_parts(conditional_writes=conditional))
    source = media("big.mp4", 11 * MiB + 123)
    info = store.put_file("takes/big.mp4", source, create_only=True)
    assert info.size == source.stat().st_size
    head = raw_client(moto_url).head_object(Bucket=bucket, Key="previz/takes/big.mp4")
    assert head["ETag"].endswith('-3"')  # three parts
    assert head["Metadata"]["sha256"] == info.sha256
    store.put_file("takes/big.mp4", source, create_only=True)  # identical: fine
    with pytest.raises(AlreadyExists):
        store.put_file("takes/big.mp4", media("other.mp4", 6 * MiB), create_only=True)
    back = store.get_file("takes/big.mp4", tmp_path / "back.mp4")
    assert back.read_bytes() == source.read_bytes()
    uploads = raw_client(moto_url).list_multipart_uploads(Bucket=bucket)
    assert not uploads.get("Uploads")  # the losing upload was aborted


def test_probe_finds_conditional_writes_honoured(open_s3) -> None:
    store = open_s3()
    assert store.conditional_writes is True
    assert store.list("") == []  # the probe cleans up after itself


def test_probe_detects_a_service_ignoring_conditions(open_s3, make_proxy, caplog) -> None:
    proxy = make_proxy(strip_conditions=True)
    caplog.set_level(logging.WARNING, logger="previz.store")
    store = open_s3(proxy.url)
    assert store.conditional_writes is False
    assert open_s3(proxy.url).conditional_writes is False
    warnings = [r for r in caplog.records if "ignores conditional writes" in r.getMessage()]
    assert len(warnings) == 1  # once per service and bucket, not per store or write
    assert store.list("") == []


def test_fallback_keeps_create_only_and_compare_and_swap_safe(open_s3, make_proxy) -> None:
    store = open_s3(make_proxy(strip_conditions=True).url)
    assert store.conditional_writes is False
    store.put_bytes("c/.claim", b"mine", create_only=True)
    with pytest.raises(AlreadyExists):
        store.put_bytes("c/.claim", b"yours", create_only=True)
    store.put_bytes("c/.claim", b"mine", create_only=True)
    data, tag = store.get_tagged("c/.claim")
    store.put_bytes("c/.claim", b"next", if_match=tag)
    with pytest.raises(WriteConflict):
        store.put_bytes("c/.claim", b"stale", if_match=tag)
    assert store.list("c/") == ["c/.claim"]  # no lock objects left behind


def test_probe_detects_a_service_ignoring_only_if_match(open_s3, make_proxy, media, caplog) -> None:
    # If-None-Match honoured, If-Match dropped: trusting the service would let a stale
    # compare-and-swap move latest.json backward.
    proxy = make_proxy(strip_headers=("If-Match",))
    caplog.set_level(logging.WARNING, logger="previz.store")
    clean = open_s3()
    store = open_s3(proxy.url)
    assert store.conditional_writes is False
    warnings = [r.getMessage() for r in caplog.records if "ignores conditional" in r.getMessage()]
    assert len(warnings) == 1 and "If-Match" in warnings[0], warnings
    cut = media("cut.mp4", 5_000)
    publish_cut(store, "LIGHTHOUSE", "SQ010", {"cut.mp4": cut}, {}, "edit-1")
    pointer, stale = store.get_tagged("LIGHTHOUSE/SQ010/latest.json")
    publish_cut(store, "LIGHTHOUSE", "SQ010", {"cut.mp4": cut}, {}, "edit-2")
    with pytest.raises(WriteConflict):
        store.put_bytes("LIGHTHOUSE/SQ010/latest.json", pointer, if_match=stale)
    assert latest_version(clean, "LIGHTHOUSE", "SQ010").version == 2


def test_fallback_lock_excludes_racing_threads(open_s3, make_proxy) -> None:
    store = open_s3(make_proxy(strip_conditions=True).url)
    outcomes: list[str] = []

    def race(index: int) -> None:
        try:
            store.put_bytes("race/.claim", f"writer {index}".encode(), create_only=True)
            outcomes.append("won")
        except AlreadyExists:
            outcomes.append("lost")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]
    assert store.list("race/") == ["race/.claim"]


def test_fallback_lock_expires_when_its_writer_died(open_s3, make_proxy, moto_url, bucket) -> None:
    store = open_s3(make_proxy(strip_conditions=True).url, PREVIZ_S3_LOCK_LEASE="0.5")
    # A crashed writer's lock object, left behind long ago (by the service's clock).
    raw_client(moto_url).put_object(Bucket=bucket, Key="previz/d/.claim.lock-deadbeef", Body=b"{}")
    time.sleep(1.1)  # Last-Modified has one-second resolution
    store.put_bytes("d/.claim", b"x", create_only=True)
    assert store.list("d/") == ["d/.claim"]
    assert raw_client(moto_url).list_objects_v2(Bucket=bucket, Prefix="previz/d/")["KeyCount"] == 1


# -- failures: one line, names the store, says the fix -------------------------------------------


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    assert isinstance(error, PrevizError) and error.exit_code == EXIT_FAILURE
    return text


def test_missing_bucket(aws_env) -> None:
    store = open_store("s3://no-such-bucket-here/previz")
    for action in (
        lambda: store.exists("a.json"),
        lambda: store.put_bytes("a.json", b"1"),
        lambda: store.list("a/"),
        lambda: store.get_bytes("a.json"),
    ):
        with pytest.raises(StoreError) as caught:
            action()
        text = one_line(caught.value)
        assert text.startswith(
            "s3://no-such-bucket-here/previz: bucket 'no-such-bucket-here' does not exist"
        )
        assert "create it or fix the store URI" in text


def test_no_credentials(aws_env, bucket: str) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    store = open_store(f"s3://{bucket}/previz")
    with pytest.raises(StoreError) as caught:
        store.put_bytes("a.json", b"1")
    text = one_line(caught.value)
    assert f"s3://{bucket}/previz: no usable AWS credentials found" in text
    assert "AWS_PROFILE" in text and "~/.aws/credentials" in text


def test_unknown_profile(aws_env, bucket: str) -> None:
    aws_env.setenv("AWS_PROFILE", "nobody")
    with pytest.raises(StoreError, match="AWS profile 'nobody' is not defined") as caught:
        open_store(f"s3://{bucket}/previz")
    one_line(caught.value)


def test_access_denied(open_s3, make_proxy) -> None:
    proxy = make_proxy(rule=lambda method, path: "403")
    store = open_s3(proxy.url)
    with pytest.raises(StoreError) as caught:
        store.put_bytes("a.json", b"1")
    text = one_line(caught.value)
    assert "access denied to write a.json" in text and "s3:PutObject" in text
    assert "testing" not in text  # the access key id never shows


def test_endpoint_unreachable(aws_env, bucket: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    aws_env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    aws_env.setenv("AWS_MAX_ATTEMPTS", "2")
    store = open_store(f"s3://{bucket}/previz")
    with pytest.raises(StoreError) as caught:
        store.get_bytes("a.json")
    text = one_line(caught.value)
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{closed}" in text
    assert "AWS_ENDPOINT_URL" in text


def test_an_endpoint_that_accepts_and_never_answers_fails_within_its_settings(aws_env,
                                                                             bucket: str) -> None:
    """A service that takes the connection and then says nothing (a hung proxy, a stuck
    gateway) fails after max_attempts x read timeout, and the error names those settings."""
    import threading
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept_and_hold, daemon=True).start()
    aws_env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
    aws_env.setenv("PREVIZ_S3_READ_TIMEOUT", "1")
    try:
        store = open_store(f"s3://{bucket}/previz")
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            store.exists("takes/ab/x")
        waited = time.monotonic() - started
    finally:
        stop.set()
        for connection in held:
            connection.close()
        silent.close()
    text = one_line(caught.value)
    assert "(no answer within 1 s, 3 attempts)" in text
    assert "PREVIZ_S3_READ_TIMEOUT" in text and "AWS_MAX_ATTEMPTS" in text
    assert len(held) == 3 and waited < 3 * 1 + 5  # three waits and the backoff between them
    # The defaults bound the same wait at about 30 s (it was 6 x 60 s).
    defaults = S3Settings()
    assert defaults.max_attempts * defaults.read_timeout_s <= 30


def test_endpoint_url_with_credentials_is_refused(aws_env, bucket: str, moto_url: str) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL", moto_url.replace("http://", "http://admin:hunter2@"))
    with pytest.raises(StoreError) as caught:
        open_store(f"s3://{bucket}/previz")
    text = one_line(caught.value)
    assert "hunter2" not in text and "admin" not in text
    assert "carries credentials" in text and "~/.aws/credentials" in text


def test_take_adopts_media_written_by_another_tool(open_s3, moto_url, bucket, media) -> None:
    import hashlib

    from previz.store import publish_take, read_take_record

    key = hashlib.sha256(b"foreign").hexdigest()
    foreign = b"bytes uploaded without our sha256 metadata"
    raw_client(moto_url).put_object(
        Bucket=bucket, Key=f"previz/takes/{key[:2]}/{key}/take.mp4", Body=foreign
    )
    store = open_s3()
    publish_take(store, key, media("mine.mp4"), {"seed": 1})
    assert read_take_record(store, key)["media"]["sha256"] == hashlib.sha256(foreign).hexdigest()
