"""Choosing a store by URI, and keeping credentials out of everything we print."""

from __future__ import annotations

from pathlib import Path

import pytest

from previz.errors import EXIT_FAILURE
from previz.store import DEFAULT_STORE, StoreError, open_store, redact, register_scheme
from previz.store.keys import check_id, check_take_key, ledger_object, take_prefix, version_prefix
from previz.store.local import LocalStore
from previz.store.registry import schemes


def test_default_is_renders_in_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(None)
    assert isinstance(store, LocalStore) and DEFAULT_STORE == "./renders"
    assert store.uri == (tmp_path / "renders").as_uri()
    assert open_store("").uri == store.uri


@pytest.mark.parametrize("form", ["{p}", "file://{p}", "file://localhost{p}"])
def test_local_forms(tmp_path: Path, form: str) -> None:
    store = open_store(form.format(p=tmp_path / "my renders"))
    assert isinstance(store, LocalStore) and store.root == tmp_path / "my renders"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://bucket/x", "unknown store scheme 'gs' — use a local path or one of file://, s3"),
        ("file://server/share", "use file:///absolute/path"),
        ("s3://B/x", "is not a valid bucket name"),
        ("s3://bucket/x?region=eu", "settings belong in the environment"),
        ("s3://bucket/../x", "has unsafe parts"),
    ],
)
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as caught:
        open_store(uri)
    assert caught.value.exit_code == EXIT_FAILURE and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "uri",
    [
        "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG@bucket/previz",
        "s3://user:hunter2@bucket",
        "S3://AKIAIOSFODNN7EXAMPLE@bucket/x",
    ],
)
def test_credentials_in_the_uri_are_refused(uri: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(uri)
    text = str(caught.value)
    assert "carries credentials" in text
    assert "environment" in text and "AWS profile" in text and "~/.aws/credentials" in text
    for secret in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "hunter2", "user:"):
        assert secret not in text


def test_registry_takes_new_schemes(tmp_path: Path) -> None:
    register_scheme("scratch", lambda uri: LocalStore(tmp_path / uri.split("://", 1)[1]))
    try:
        assert open_store("scratch://one").uri == (tmp_path / "one").as_uri()
        assert "scratch" in schemes()
    finally:
        from previz.store import registry

        registry._openers.pop("scratch")


def test_redact() -> None:
    url = (
        "https://s3.amazonaws.com/b/k.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
        "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261122%2Fus-east-1%2Fs3%2Faws4_request&"
        "X-Amz-Date=20261122T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&"
        "X-Amz-Security-Token=FQoGZXIvYXdz&X-Amz-Signature=0123abcd"
    )
    clean = redact(url)
    for secret in ("AKIA", "FQoGZXIvYXdz", "0123abcd"):
        assert secret not in clean
    assert clean.startswith("https://s3.amazonaws.com/b/k.mp4?X-Amz-Algorithm=***")
    assert redact("see http://root:pw@host:9000/x") == "see http://***@host:9000/x"
    assert redact("key ASIAY34FZKBOKMUTVV7A used") == "key *** used"
    assert redact("aws_secret_access_key = abc/def+ghi") == "aws_secret_access_key = ***"
    assert redact("nothing to hide: SH0010 take 2") == "nothing to hide: SH0010 take 2"


@pytest.mark.parametrize("bad", ["", "a/b", "..", "a b", "x" * 65, "é", None, 12])
def test_ids_are_validated(bad) -> None:
    with pytest.raises(StoreError, match="is not a valid id"):
        check_id("project", bad)
    with pytest.raises(StoreError):
        version_prefix(bad, "SQ010", 1)


def test_key_builders() -> None:
    key = "0f" * 32
    assert check_take_key(key) == key
    assert take_prefix(key) == f"takes/0f/{key}/"
    assert version_prefix("LIGHTHOUSE", "SQ010", 12) == "LIGHTHOUSE/SQ010/v012/"
    with pytest.raises(StoreError, match="out of range"):
        version_prefix("LIGHTHOUSE", "SQ010", 0)
    for bad in ("0F" * 32, "0f" * 31, "../" + "0" * 61, "g" * 64):
        with pytest.raises(StoreError, match="not a take key"):
            take_prefix(bad)
    from datetime import date

    assert (
        ledger_object(date(2026, 11, 20), "RUN1", "abc")
        == "ledger/date=2026-11-20/RUN1-abc.parquet"
    )
