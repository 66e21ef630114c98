"""The S3 store: any S3-compatible service through boto3.

Settings come from the standard places (environment, AWS profiles, `AWS_ENDPOINT_URL`); the client
is tuned for S3-compatible services (path-style addressing, SigV4, checksums only when required,
standard retries with backoff). Create-only and compare-and-swap writes use `If-None-Match: *` and
`If-Match`; a service that ignores them is detected once by a probe and handled with lock objects
instead (see `s3_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3.session
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    ResponseStreamingError,
)

from previz.store.base import (
    DEFAULT_LINK_EXPIRY_S,
    ObjectInfo,
    check_expiry,
    content_type,
    sha256_bytes,
    sha256_file,
)
from previz.store.errors import (
    AlreadyExists,
    NoCredentials,
    NotFound,
    StoreError,
    WriteConflict,
    in_store,
)
from previz.store.keys import check_object_key, check_prefix
from previz.store.redact import CREDENTIALS_HELP, find_credentials, redact
from previz.store.s3_lock import LOCK_MARK, LockObjects

__all__ = ["S3Store", "S3Settings"]

log = logging.getLogger("previz.store")

MiB = 1024 * 1024
_STREAM_ERRORS = (
    ResponseStreamingError,
    IncompleteReadError,
    ReadTimeoutError,
    ConnectionClosedError,
)
_UNREACHABLE = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ConnectionClosedError,
    ReadTimeoutError,
)
_FULL_CODES = {"InsufficientStorage", "XMinioStorageFull", "QuotaExceeded", "StorageFull"}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "Forbidden", "403"}
_BAD_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
}

# Probe results and warnings are per service and bucket, shared by every store in the process.
_probe_lock = threading.Lock()
_probed: dict[tuple[str, str], bool] = {}
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class S3Settings:
    """Client tuning. Defaults suit S3-compatible services; the environment may override them.

    Memory while uploading is bounded by `transfer.multipart_chunksize * transfer.max_concurrency`.
    `conditional_writes`: "auto" probes the service once; "on"/"off" skip the probe.
    """

    # A service that accepts connections and never answers fails a request in about
    # max_attempts x read_timeout_s (30 s), not minutes: AWS's own default of 3 attempts, and a
    # read timeout that is only the wait for the next bytes (a large upload's reply included).
    max_attempts: int = 3
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    conditional_writes: str = "auto"
    lock_lease_s: float = 120.0
    lock_wait_s: float = 300.0
    transfer: TransferConfig = field(
        default_factory=lambda: TransferConfig(
            multipart_threshold=16 * MiB, multipart_chunksize=16 * MiB, max_concurrency=4
        )
    )

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> S3Settings:
        """Defaults, overridden by `AWS_MAX_ATTEMPTS` (the standard variable) and `PREVIZ_S3_*`."""
        env = dict(os.environ if env is None else env)
        defaults = cls()

        def number(name: str, default: float, kind: type = float) -> Any:
            text = env.get(name)
            if text is None or text == "":
                return default
            try:
                value = kind(text)
            except ValueError:
                value = None
            if value is None or value <= 0:
                raise StoreError(f"{name}={text!r} is not a positive number — fix or unset it")
            return value

        mode = env.get("PREVIZ_S3_CONDITIONAL_WRITES", "auto").lower()
        if mode not in ("auto", "on", "off"):
            raise StoreError(
                f"PREVIZ_S3_CONDITIONAL_WRITES={mode!r} is not valid — use auto, on or off"
            )
        chunk = int(number("PREVIZ_S3_MULTIPART_CHUNK_MB", 16, int)) * MiB
        if chunk < 5 * MiB:
            raise StoreError(
                "PREVIZ_S3_MULTIPART_CHUNK_MB is below 5 — S3 parts must be at least 5 MiB"
            )
        return cls(
            max_attempts=number("AWS_MAX_ATTEMPTS", defaults.max_attempts, int),
            connect_timeout_s=number("PREVIZ_S3_CONNECT_TIMEOUT", defaults.connect_timeout_s),
            read_timeout_s=number("PREVIZ_S3_READ_TIMEOUT", defaults.read_timeout_s),
            conditional_writes=mode,
            lock_lease_s=number("PREVIZ_S3_LOCK_LEASE", defaults.lock_lease_s),
            lock_wait_s=number("PREVIZ_S3_LOCK_WAIT", defaults.lock_wait_s),
            transfer=TransferConfig(
                multipart_threshold=chunk,
                multipart_chunksize=chunk,
                max_concurrency=int(number("PREVIZ_S3_MAX_CONCURRENCY", 4, int)),
            ),
        )


class S3Store:
    """A store in `s3://bucket/prefix`. Creating one makes no network request."""

    def __init__(self, bucket: str, prefix: str = "", settings: S3Settings | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_prefix(self.prefix + "/")
        self.settings = settings or S3Settings.from_environment()
        self._client = self._make_client()
        self.endpoint = self._client.meta.endpoint_url
        if find_credentials(self.endpoint):
            raise StoreError(
                f"{self.uri}: the S3 endpoint URL {redact(self.endpoint)} carries credentials — "
                f"{CREDENTIALS_HELP}"
            )
        self._bucket_checked = False
        self._locks = LockObjects(self)

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r}, endpoint={redact(self.endpoint)!r})"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def client(self) -> Any:
        """The boto3 client (for the lock helper and tests that look behind the store)."""
        return self._client

    # -- writes -----------------------------------------------------------------------------

    def put_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> ObjectInfo:
        if create_only and if_match is not None:
            raise ValueError("create_only and if_match are exclusive")
        digest = sha256_bytes(data)

        def send(conditions: dict[str, str]) -> str:
            response = self._client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=data,
                **self._object_args(key, digest),
                **conditions,
            )
            return response["ETag"]

        tag = self._write(key, digest, send, create_only=create_only, if_match=if_match)
        return ObjectInfo(key=key, size=len(data), tag=tag, sha256=digest)

    def put_file(
        self, key: str, path: str | os.PathLike[str], *, create_only: bool = False
    ) -> ObjectInfo:
        source = Path(path)
        if not source.is_file():
            raise StoreError(
                f"{self.uri}: cannot store {key}: {source} is not a file — check the path"
            )
        digest = sha256_file(source)
        size = source.stat().st_size
        large = size > self.settings.transfer.multipart_threshold

        def send(conditions: dict[str, str]) -> str:
            if large:
                return self._multipart(key, source, size, digest, conditions)
            with open(source, "rb") as body:
                response = self._client.put_object(
                    Bucket=self.bucket,
                    Key=self._full(key),
                    Body=body,
                    **self._object_args(key, digest),
                    **conditions,
                )
            return response["ETag"]

        tag = self._write(key, digest, send, create_only=create_only, if_match=None)
        return ObjectInfo(key=key, size=size, tag=tag, sha256=digest)

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._full(key))

    # -- reads ------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        found = self._get(key)
        if found is None:
            raise NotFound(f"{self.uri}: no object {key} — check the key or publish it first")
        return found[0]

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        return self._get(key)

    def get_file(self, key: str, dest: str | os.PathLike[str]) -> Path:
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
        try:
            for attempt in range(1, self.settings.max_attempts + 1):
                with self._errors("read", key):
                    response = self._get_response(key)
                    if response is None:
                        raise NotFound(
                            f"{self.uri}: no object {key} — check the key or publish it first"
                        )
                    expected = response.get("Metadata", {}).get("sha256")
                    digest = hashlib.sha256()
                    try:
                        with open(temp, "wb") as handle:
                            for chunk in response["Body"].iter_chunks(1 * MiB):
                                digest.update(chunk)
                                handle.write(chunk)
                    except _STREAM_ERRORS:
                        if attempt == self.settings.max_attempts:
                            raise
                        continue
                if expected and digest.hexdigest() != expected:
                    if attempt == self.settings.max_attempts:
                        raise StoreError(
                            f"{self.uri}: {key} arrived corrupted (sha256 mismatch) — retry; if "
                            "it persists the stored object is damaged"
                        )
                    continue
                os.replace(temp, target)
                return target
            raise AssertionError("unreachable")
        finally:
            temp.unlink(missing_ok=True)

    def stat(self, key: str) -> ObjectInfo | None:
        with self._errors("read", key):
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
            except ClientError as error:
                if _status(error) == 404:
                    self._check_bucket()
                    return None
                raise
        return ObjectInfo(
            key=key,
            size=head["ContentLength"],
            tag=head["ETag"],
            sha256=head.get("Metadata", {}).get("sha256"),
        )

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def list_entries(self, prefix: str = "") -> list[dict[str, Any]]:
        """Raw listing entries (relative `Key`, `LastModified`, `Size`), lock objects included."""
        try:
            check_prefix(prefix)
        except StoreError as error:
            raise in_store(self.uri, error) from None
        base = self._base()
        found = []
        with self._errors("list", prefix or "/"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    found.append({**entry, "Key": entry["Key"][len(base) :]})
        return found

    def list(self, prefix: str = "") -> list[str]:
        return sorted(
            entry["Key"] for entry in self.list_entries(prefix) if LOCK_MARK not in entry["Key"]
        )

    def link(self, key: str, expires_s: int = DEFAULT_LINK_EXPIRY_S) -> str:
        check_expiry(self.uri, expires_s)
        if not self.exists(key):
            raise NotFound(f"{self.uri}: no object {key} to link — publish it first")
        with self._errors("sign a link for", key):
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._full(key)},
                ExpiresIn=expires_s,
            )

    # -- conditional writes -----------------------------------------------------------------

    @property
    def conditional_writes(self) -> bool:
        """Whether the service honours If-None-Match and If-Match (probed once per bucket)."""
        mode = self.settings.conditional_writes
        if mode != "auto":
            return mode == "on"
        cache_key = (self.endpoint, self.bucket)
        with _probe_lock:
            if cache_key not in _probed:
                ignored = self._probe()
                _probed[cache_key] = ignored is None
                if ignored is not None and cache_key not in _warned:
                    _warned.add(cache_key)
                    log.warning(
                        "%s: the S3 service at %s ignores conditional writes (%s); "
                        "using lock objects with a %gs lease instead",
                        self.uri,
                        redact(self.endpoint),
                        ignored,
                        self.settings.lock_lease_s,
                    )
            return _probed[cache_key]

    def _probe(self) -> str | None:
        """The condition header the service ignores, or None when it honours both."""
        key = f".previz-probe/{uuid.uuid4().hex}"
        full = self._full(key)

        def status(body: bytes, **condition: str) -> int:
            try:
                self._client.put_object(Bucket=self.bucket, Key=full, Body=body, **condition)
            except ClientError as error:
                if _is_precondition(error):
                    return 412
                if _status(error) in (400, 501):
                    return 501  # the header itself is not understood
                raise
            return 200

        try:
            with self._errors("probe conditional writes with", key):
                # 412 on the first create: a retry found the object its first try made.
                if status(b"1", IfNoneMatch="*") == 501 or status(b"2", IfNoneMatch="*") != 412:
                    return "If-None-Match"
                # Create-only alone is not enough: latest.json moves by compare-and-swap, and a
                # stale If-Match that goes through would move it backward.
                if status(b"3", IfMatch=f'"{uuid.uuid4().hex}"') != 412:
                    return "If-Match"
                return None
        finally:
            with contextlib.suppress(StoreError, BotoCoreError, ClientError):
                self._client.delete_object(Bucket=self.bucket, Key=full)

    def _write(
        self,
        key: str,
        digest: str,
        send: Callable[[dict[str, str]], str],
        *,
        create_only: bool,
        if_match: str | None,
    ) -> str:
        self._full(key)
        if not create_only and if_match is None:
            with self._errors("write", key):
                return send({})
        if not self.conditional_writes:
            with self._locks.held(key), self._errors("write", key):
                current = self.stat(key)
                if create_only and current is not None:
                    return self._same_content(key, digest, current)
                if if_match is not None and (current is None or current.tag != if_match):
                    raise self._changed(key)
                return send({})
        conditions = {"IfNoneMatch": "*"} if create_only else {"IfMatch": if_match or ""}
        for attempt in range(1, self.settings.max_attempts + 1):
            with self._errors("write", key):
                try:
                    return send(conditions)
                except ClientError as error:
                    # 409: a concurrent conditional write to this key is in flight; try again.
                    if _status(error) == 409 and attempt < self.settings.max_attempts:
                        time.sleep(0.05 * attempt)
                        continue
                    missing = _status(error) == 404 and _code(error) != "NoSuchBucket"
                    if not (_is_precondition(error) or (if_match is not None and missing)):
                        raise
            if if_match is not None:
                raise self._changed(key)
            current = self.stat(key)
            if current is None:
                continue  # deleted between the failed write and now: try to create it again
            return self._same_content(key, digest, current)
        raise StoreError(f"{self.uri}: could not write {key}: it keeps changing — retry later")

    def _same_content(self, key: str, digest: str, current: ObjectInfo) -> str:
        # Identical bytes already there (our own retried request, or a twin writer): success.
        if current.sha256 == digest:
            return current.tag
        raise AlreadyExists(f"{self.uri}: {key} already exists — it is never overwritten")

    def copy(self, source: str, key: str) -> ObjectInfo:
        """A server-side copy (boto3's managed copy: parts copied by the service for large
        objects), metadata and its sha256 included."""
        origin = self.stat(source)
        if origin is None:
            raise NotFound(f"{self.uri}: no object {source} to copy — publish it first")
        existing = self.stat(key)
        if existing is not None:  # a retried copy, or another writer's object
            if existing.sha256 and existing.sha256 == origin.sha256:
                return existing
            raise AlreadyExists(f"{self.uri}: {key} already exists — it is never overwritten")
        with self._errors("copy", key):
            self._client.copy(
                {"Bucket": self.bucket, "Key": self._full(source)}, self.bucket,
                self._full(key), ExtraArgs={"MetadataDirective": "COPY"},
                Config=self.settings.transfer)
        info = self.stat(key)
        if info is None:  # the service said done and shows nothing: say so, not None
            raise StoreError(f"{self.uri}: copying {source} to {key} left nothing — retry")
        return info

    def sweep_staging(self) -> int:
        """Nothing to sweep: S3 never shows a half-written object, and the multipart uploads a
        dead writer left are aborted by the bucket's lifecycle rule (cluster/README.md)."""
        return 0

    def _changed(self, key: str) -> WriteConflict:
        return WriteConflict(
            f"{self.uri}: {key} changed since it was read — read it again and retry"
        )

    # -- helpers ----------------------------------------------------------------------------

    def _make_client(self) -> Any:
        try:
            core = botocore.session.Session()
            region = core.get_config_variable("region") or "us-east-1"
            session = boto3.session.Session(botocore_session=core)
            config = Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "total_max_attempts": self.settings.max_attempts},
                connect_timeout=self.settings.connect_timeout_s,
                read_timeout=self.settings.read_timeout_s,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=max(10, self.settings.transfer.max_concurrency * 2),
            )
            return session.client("s3", region_name=region, config=config)
        except ProfileNotFound as error:
            raise StoreError(
                f"{self.uri}: AWS profile {error.kwargs.get('profile')!r} is not defined — "
                "add it to ~/.aws/config or ~/.aws/credentials, or unset AWS_PROFILE"
            ) from None
        except (BotoCoreError, ValueError) as error:
            raise StoreError(
                f"{self.uri}: cannot set up the S3 client: {redact(str(error))} — check "
                "AWS_ENDPOINT_URL, AWS_REGION and the AWS profile"
            ) from None

    def _full(self, key: str) -> str:
        try:
            return self._base() + check_object_key(key)
        except StoreError as error:
            raise in_store(self.uri, error) from None

    def _base(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _object_args(self, key: str, digest: str) -> dict[str, Any]:
        return {"ContentType": content_type(key), "Metadata": {"sha256": digest}}

    def _get_response(self, key: str) -> dict[str, Any] | None:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as error:
            if _code(error) == "NoSuchKey" or (
                _status(error) == 404 and _code(error) != "NoSuchBucket"
            ):
                return None
            raise

    def _get(self, key: str) -> tuple[bytes, str] | None:
        for attempt in range(1, self.settings.max_attempts + 1):
            with self._errors("read", key):
                response = self._get_response(key)
                if response is None:
                    return None
                try:
                    return response["Body"].read(), response["ETag"]
                except _STREAM_ERRORS:
                    if attempt == self.settings.max_attempts:
                        raise
        raise AssertionError("unreachable")

    def _check_bucket(self) -> None:
        # HEAD of a missing key and of a missing bucket both answer a bare 404: tell them
        # apart once.
        if self._bucket_checked:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _status(error) == 404:
                raise StoreError(self._message("read", "", "NoSuchBucket", 404, "")) from None
            raise
        self._bucket_checked = True

    def _multipart(
        self, key: str, source: Path, size: int, digest: str, conditions: dict[str, str]
    ) -> str:
        full = self._full(key)
        chunk = self.settings.transfer.multipart_chunksize
        upload = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=full, **self._object_args(key, digest)
        )
        upload_id = upload["UploadId"]

        def send_part(number: int) -> dict[str, Any]:
            # Each worker reads only its own part: memory stays at chunk size x workers.
            with open(source, "rb") as handle:
                handle.seek((number - 1) * chunk)
                body = handle.read(chunk)
            response = self._client.upload_part(
                Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
            )
            return {"PartNumber": number, "ETag": response["ETag"]}

        try:
            count = max(1, -(-size // chunk))
            with ThreadPoolExecutor(max_workers=self.settings.transfer.max_concurrency) as pool:
                parts = list(pool.map(send_part, range(1, count + 1)))
            try:
                response = self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **conditions,
                )
            except ClientError as error:
                # A retried complete whose first try went through finds no upload left.
                current = self.stat(key) if _code(error) == "NoSuchUpload" else None
                if current is None or current.sha256 != digest:
                    raise
                return current.tag
            return response["ETag"]
        except BaseException:
            with contextlib.suppress(BotoCoreError, ClientError):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id
                )
            raise

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except ClientError as error:
            if _is_precondition(error):
                raise
            message = error.response.get("Error", {}).get("Message", "")
            raise StoreError(
                self._message(action, key, _code(error), _status(error), message)
            ) from None
        except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError):
            raise NoCredentials(
                f"{self.uri}: no usable AWS credentials found — set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, choose a profile with AWS_PROFILE, or add "
                "~/.aws/credentials"
            ) from None
        except _UNREACHABLE as error:
            settings = self.settings
            waited = (
                f"no answer within {settings.read_timeout_s:g} s"
                if isinstance(error, ReadTimeoutError)
                else f"no connection within {settings.connect_timeout_s:g} s"
                if isinstance(error, ConnectTimeoutError)
                else "connection refused or lost"
            )
            raise StoreError(
                f"{self.uri}: cannot reach the S3 endpoint {redact(self.endpoint)} to {action} "
                f"{key or 'the bucket'} ({waited}, {settings.max_attempts} attempts) — check "
                "AWS_ENDPOINT_URL and that the service is running; PREVIZ_S3_READ_TIMEOUT, "
                "PREVIZ_S3_CONNECT_TIMEOUT and AWS_MAX_ATTEMPTS set how long previz waits"
            ) from None
        except BotoCoreError as error:
            raise StoreError(
                f"{self.uri}: cannot {action} {key}: {redact(str(error))} — check the S3 settings"
            ) from None
        except OSError as error:
            raise StoreError(
                f"{self.uri}: cannot {action} {key}: {redact(str(error))} — check the local path "
                "and the network"
            ) from None

    def _message(self, action: str, key: str, code: str, status: int, message: str) -> str:
        what = f"{action} {key}" if key else f"{action} the bucket"
        if code == "NoSuchBucket":
            return (
                f"{self.uri}: bucket {self.bucket!r} does not exist at "
                f"{redact(self.endpoint)} — create it or fix the store URI"
            )
        if code in _BAD_CREDENTIAL_CODES:
            return (
                f"{self.uri}: the service rejected the credentials ({code}) — check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile"
            )
        if code in _DENIED_CODES or status == 403:
            return (
                f"{self.uri}: access denied to {what} — grant s3:GetObject, s3:PutObject, "
                "s3:DeleteObject and s3:ListBucket on the bucket, or use other credentials"
            )
        if code in _FULL_CODES or status == 507:
            return f"{self.uri}: the store is full, cannot {what} — free space or raise the quota"
        detail = redact(f"{code} (HTTP {status}) {message}".strip())
        return f"{self.uri}: cannot {what}: {detail} — retry later or check the service"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _is_precondition(error: ClientError) -> bool:
    return _status(error) == 412 or _code(error) == "PreconditionFailed"
