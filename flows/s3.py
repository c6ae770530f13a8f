"""S3 for the flows: backups (a multipart upload fed from a stream, hashed on the way through),
restores (listing and downloading them) and reports.

The dump never touches the local disk on the way up: pg_dump's stdout is cut into parts and
uploaded as it is produced, so a backup needs memory for one part, not the whole database.

Clients are plain boto3 ones, so boto3's standard variables choose the endpoint
(`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`): a local S3 works without any flow option.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# S3 needs parts of at least 5 MiB (but the last); 16 MiB keeps 10,000 parts >= 150 GiB.
PART_SIZE = 16 * 1024 * 1024
DOWNLOAD_CHUNK = 1024 * 1024


class StorageError(RuntimeError):
    """An S3 call failed; the message names the operation and S3's error code only."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    bucket: str
    key: str
    bytes: int
    sha256: str
    server_side_encryption: str | None
    kms_key_id: str | None


def boto_client(service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client with standard retries; endpoints from boto3's own variables unless given."""
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client(service, endpoint_url=endpoint_url, config=config)


def s3_client(endpoint_url: str | None = None) -> Any:
    return boto_client("s3", endpoint_url)


def _encryption_arguments(kms_key_id: str | None) -> dict[str, str]:
    if kms_key_id is None:
        return {}  # the bucket's default encryption applies
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}


def _storage_error(operation: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "unknown")
        return StorageError(f"S3 {operation} failed: {code}")
    return StorageError(f"S3 {operation} failed: {type(exc).__name__}")


def _read_part(stream: IO[bytes]) -> bytes:
    """Up to PART_SIZE bytes; fewer only at the end of the stream (pipes return short reads)."""
    chunks: list[bytes] = []
    remaining = PART_SIZE
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def upload_stream(
    client: Any,
    stream: IO[bytes],
    bucket: str,
    key: str,
    kms_key_id: str | None,
    on_bytes: Callable[[int], None] | None = None,
) -> StoredObject:
    """Multipart-upload everything `stream` yields; the upload is aborted if anything fails,
    so no half-written object (nor its billed parts) is left behind."""
    digest = hashlib.sha256()
    total = 0
    try:
        upload = client.create_multipart_upload(
            Bucket=bucket,
            Key=key,
            ContentType="application/octet-stream",
            **_encryption_arguments(kms_key_id),
        )
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error("CreateMultipartUpload", exc) from exc
    upload_id = upload["UploadId"]
    parts: list[dict[str, Any]] = []
    try:
        while True:
            data = _read_part(stream)
            if not data and parts:
                break
            digest.update(data)
            total += len(data)
            response = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=data
            )
            parts.append({"ETag": response["ETag"], "PartNumber": len(parts) + 1})
            if on_bytes is not None:
                on_bytes(len(data))
            if len(data) < PART_SIZE:
                break
        completed = client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException as exc:
        # If even the abort fails, the bucket's lifecycle rule removes the orphaned parts.
        with contextlib.suppress(BotoCoreError, ClientError):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        if isinstance(exc, BotoCoreError | ClientError):
            raise _storage_error("multipart upload", exc) from exc
        raise
    return StoredObject(
        bucket=bucket,
        key=key,
        bytes=total,
        sha256=digest.hexdigest(),
        server_side_encryption=completed.get("ServerSideEncryption"),
        kms_key_id=completed.get("SSEKMSKeyId"),
    )


def put_bytes(
    client: Any,
    bucket: str,
    key: str,
    body: bytes,
    kms_key_id: str | None,
    content_type: str = "application/json",
) -> None:
    try:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            **_encryption_arguments(kms_key_id),
        )
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error("PutObject", exc) from exc


def download(
    client: Any,
    bucket: str,
    key: str,
    destination: Path,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Write the object to `destination`; returns its size and sha256."""
    digest = hashlib.sha256()
    total = 0
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with destination.open("wb") as file:
            for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
                digest.update(chunk)
                total += len(chunk)
                file.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error("GetObject", exc) from exc
    return total, digest.hexdigest()


def get_bytes(client: Any, bucket: str, key: str, max_bytes: int) -> bytes:
    """A small object (a manifest, a report) read whole; larger than `max_bytes` is an error."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        if int(response.get("ContentLength", 0)) > max_bytes:
            raise StorageError(f"s3://{bucket}/{key} is larger than {max_bytes} bytes")
        body: bytes = response["Body"].read(max_bytes + 1)
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error("GetObject", exc) from exc
    return body


def child_prefixes(client: Any, bucket: str, prefix: str) -> list[str]:
    """The "folders" directly under `prefix` (which ends with "/"), sorted as text."""
    found: list[str] = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            found += [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error("ListObjectsV2", exc) from exc
    return sorted(found)
