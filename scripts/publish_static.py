"""Publish the static assets to the static bucket (`make publish-static STATIC_BUCKET=<bucket>`).

Every asset goes to `static/<name>.<sha256 prefix>.<ext>` with `Cache-Control: public,
max-age=31536000, immutable`: a key names its bytes, so an object is uploaded once and never
changed, and a run that finds its key present skips it. The assets are the /docs page's
(api.docs_ui.assets, the same names the app links) and, with `--dir`, every file of a front-end
build under `app/<relative path>`. Last, `static/manifest.json` (logical name -> key) is written
with a one-minute lifetime, only when its content changed.

Old objects stay: a page still open (or an older release still serving) keeps its URLs.

S3 and CloudFront are reached through boto3's usual configuration, so AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_CLOUDFRONT) points it at a local S3 unchanged. With
`--distribution-id`, the changed paths that CDN caches may hold (the manifest; new hashed keys
were never served) are invalidated. The last line on stdout is a JSON summary of what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from api.docs_ui.assets import (
    IMMUTABLE_CACHE_CONTROL,
    STATIC_PREFIX,
    StaticAsset,
    docs_assets,
)

MANIFEST_KEY = f"{STATIC_PREFIX}/manifest.json"
# Short enough that a new release's manifest reaches readers within a minute even if an
# invalidation is lost; long enough to absorb bursts at the CDN.
MANIFEST_CACHE_CONTROL = "public, max-age=60"
FRONTEND_NAMESPACE = "app"


def collect(frontend_build: Path | None = None) -> dict[str, StaticAsset]:
    """The assets to publish by logical name: the docs UI's, and a front-end build's files."""
    assets = dict(docs_assets())
    if frontend_build is not None:
        if not frontend_build.is_dir():
            raise ValueError(f"{frontend_build} is not a directory")
        for path in sorted(frontend_build.rglob("*")):
            if path.is_file():
                name = f"{FRONTEND_NAMESPACE}/{path.relative_to(frontend_build).as_posix()}"
                assets[name] = StaticAsset(name, path)
    return assets


def manifest(assets: Mapping[str, StaticAsset]) -> bytes:
    # Sorted and stable: the same assets give the same bytes, so re-publishing changes nothing.
    body = {name: asset.key for name, asset in sorted(assets.items())}
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


@dataclass
class Published:
    bucket: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: int = 0
    manifest_updated: bool = False
    invalidated: list[str] = field(default_factory=list)
    invalidation_id: str | None = None

    def summary(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _existing_etags(s3: Any, bucket: str) -> dict[str, str]:
    etags: dict[str, str] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{STATIC_PREFIX}/")
    for page in pages:
        for item in page.get("Contents", []):
            etags[item["Key"]] = item["ETag"].strip('"')
    return etags


def publish(
    s3: Any,
    bucket: str,
    assets: Mapping[str, StaticAsset],
    *,
    cloudfront: Any = None,
    distribution_id: str | None = None,
) -> Published:
    result = Published(bucket=bucket)
    existing = _existing_etags(s3, bucket)
    # Assets first, the manifest last: a manifest never names an object not yet uploaded.
    for asset in sorted(assets.values(), key=lambda a: a.key):
        if asset.key in existing:
            result.unchanged += 1
            continue
        s3.put_object(
            Bucket=bucket,
            Key=asset.key,
            Body=asset.data,
            ContentType=asset.content_type,
            CacheControl=IMMUTABLE_CACHE_CONTROL,
        )
        result.uploaded.append(asset.key)

    body = manifest(assets)
    # A single-part upload to an SSE-S3 bucket (the static bucket's encryption) has the MD5 of
    # its bytes as ETag: equal means the manifest is already there.
    if existing.get(MANIFEST_KEY) != hashlib.md5(body, usedforsecurity=False).hexdigest():
        s3.put_object(
            Bucket=bucket,
            Key=MANIFEST_KEY,
            Body=body,
            ContentType="application/json",
            CacheControl=MANIFEST_CACHE_CONTROL,
        )
        result.manifest_updated = True
        result.invalidated = [f"/{MANIFEST_KEY}"]

    if distribution_id and result.invalidated:
        response = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(result.invalidated), "Items": result.invalidated},
                # The manifest's digest: a retried run asks for the same invalidation again.
                "CallerReference": hashlib.sha256(body).hexdigest(),
            },
        )
        result.invalidation_id = response["Invalidation"]["Id"]
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.publish_static", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--bucket", required=True, help="the static bucket (stack output)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="a front-end build to publish too, under app/<relative path>",
    )
    parser.add_argument(
        "--distribution-id",
        default=None,
        help="CloudFront distribution whose cached copies of changed paths are invalidated",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        assets = collect(options.dir)
        cloudfront = boto3.client("cloudfront") if options.distribution_id else None
        result = publish(
            boto3.client("s3"),
            options.bucket,
            assets,
            cloudfront=cloudfront,
            distribution_id=options.distribution_id,
        )
    except (ValueError, OSError) as error:
        print(f"publish-static: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"publish-static: {options.bucket}: {error}", file=sys.stderr)
        return 1
    for key in result.uploaded:
        print(f"uploaded {key}")
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
