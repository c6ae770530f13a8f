"""`make publish-static` against S3 and CloudFront served by moto over HTTP (boto3 reaches it
through AWS_ENDPOINT_URL, as it would reach a local S3): content-hashed keys, immutable caching,
a short-lived manifest, idempotent re-publishing and invalidation of only what changed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import fastapi_offline
import pytest
from moto.server import ThreadedMotoServer

from api.docs_ui import assets as docs
from scripts.publish_static import MANIFEST_KEY, collect, publish
from tests.delivery.workflows import ROOT
from tests.live_server import free_port
from tests.services import use_fake_aws_credentials

SWAGGER = Path(fastapi_offline.__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
EXPECTED_DOCS = {
    "docs/swagger-ui-bundle.js": (SWAGGER / "swagger-ui-bundle.js", "text/javascript"),
    "docs/swagger-ui.css": (SWAGGER / "swagger-ui.css", "text/css"),
    "docs/favicon.png": (SWAGGER / "favicon.png", "image/png"),
    "docs/swagger-ui-init.js": (
        ROOT / "api" / "docs_ui" / "swagger-ui-init.js",
        "text/javascript",
    ),
}


def expected_key(name: str, data: bytes) -> str:
    stem, _, suffix = name.rpartition(".")
    return f"static/{stem}.{hashlib.sha256(data).hexdigest()[:16]}.{suffix}"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        use_fake_aws_credentials(patch)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        patch.setenv("AWS_ENDPOINT_URL", url)
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture
def s3(endpoint: str) -> Any:
    return boto3.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"static-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    # Like the stack's static bucket: versioned, so a rewritten object leaves a trace.
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def distribution_id(endpoint: str) -> str:
    cloudfront = boto3.client("cloudfront")
    reference = uuid.uuid4().hex
    created = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": reference,
            "Comment": "publish-static test",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "static",
                        "DomainName": "static.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "static",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            },
        }
    )
    return str(created["Distribution"]["Id"])


def versions(s3: Any, bucket: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


def test_every_docs_asset_goes_under_its_content_hash_cached_for_a_year(
    s3: Any, bucket: str
) -> None:
    result = publish(s3, bucket, collect())
    keys = {}
    for name, (source, media_type) in EXPECTED_DOCS.items():
        data = source.read_bytes()
        key = expected_key(name, data)
        keys[name] = key
        stored = s3.get_object(Bucket=bucket, Key=key)
        assert stored["Body"].read() == data, name
        assert stored["CacheControl"] == IMMUTABLE, name
        assert stored["ContentType"].split(";")[0] == media_type, name
    assert sorted(result.uploaded) == sorted(keys.values())
    assert result.unchanged == 0


def test_the_manifest_names_every_key_and_lives_a_minute(s3: Any, bucket: str) -> None:
    publish(s3, bucket, collect())
    stored = s3.get_object(Bucket=bucket, Key=MANIFEST_KEY)
    assert MANIFEST_KEY == "static/manifest.json"
    assert stored["CacheControl"] == "public, max-age=60"
    assert stored["ContentType"] == "application/json"
    assert json.loads(stored["Body"].read()) == {
        name: expected_key(name, source.read_bytes()) for name, (source, _) in EXPECTED_DOCS.items()
    }


def test_publishing_again_uploads_nothing_and_invalidates_nothing(
    s3: Any, bucket: str, distribution_id: str
) -> None:
    cloudfront = boto3.client("cloudfront")
    first = publish(s3, bucket, collect(), cloudfront=cloudfront, distribution_id=distribution_id)
    assert first.invalidated == ["/static/manifest.json"]
    before = versions(s3, bucket)

    again = publish(s3, bucket, collect(), cloudfront=cloudfront, distribution_id=distribution_id)

    assert again.uploaded == []
    assert again.unchanged == len(EXPECTED_DOCS)
    assert again.manifest_updated is False
    assert again.invalidated == []
    assert again.invalidation_id is None
    assert versions(s3, bucket) == before  # not one object written twice
    assert set(before.values()) == {1}
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]
    assert listed["Quantity"] == 1


def test_a_changed_file_uploads_only_itself_and_invalidates_only_the_manifest(
    s3: Any, bucket: str, distribution_id: str, tmp_path: Path
) -> None:
    build = tmp_path / "dist"
    (build / "assets").mkdir(parents=True)
    (build / "assets" / "app.js").write_text("console.log(1);\n", encoding="utf-8")
    (build / "index.html").write_text("<!doctype html>\n", encoding="utf-8")
    cloudfront = boto3.client("cloudfront")
    publish(s3, bucket, collect(build), cloudfront=cloudfront, distribution_id=distribution_id)
    unchanged_html = s3.get_object(
        Bucket=bucket, Key=expected_key("app/index.html", b"<!doctype html>\n")
    )
    assert unchanged_html["ContentType"].startswith("text/html")

    (build / "assets" / "app.js").write_text("console.log(2);\n", encoding="utf-8")
    result = publish(
        s3, bucket, collect(build), cloudfront=cloudfront, distribution_id=distribution_id
    )

    new_key = expected_key("app/assets/app.js", b"console.log(2);\n")
    assert result.uploaded == [new_key]
    assert result.unchanged == len(EXPECTED_DOCS) + 1  # index.html and the docs assets
    assert result.manifest_updated is True
    assert result.invalidated == ["/static/manifest.json"]
    invalidation = cloudfront.get_invalidation(
        DistributionId=distribution_id, Id=result.invalidation_id
    )["Invalidation"]
    assert invalidation["InvalidationBatch"]["Paths"]["Items"] == ["/static/manifest.json"]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=MANIFEST_KEY)["Body"].read())
    assert manifest["app/assets/app.js"] == new_key
    # The old version stays for pages (and releases) that still link it.
    s3.head_object(Bucket=bucket, Key=expected_key("app/assets/app.js", b"console.log(1);\n"))


def test_the_app_links_the_keys_that_are_published() -> None:
    published = {name: asset.key for name, asset in collect().items()}
    assert published == {
        name: expected_key(name, source.read_bytes()) for name, (source, _) in EXPECTED_DOCS.items()
    }
    assert {asset.key for asset in docs.docs_assets().values()} == set(published.values())


def _make(*arguments: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "publish-static", *arguments],
        cwd=ROOT,
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_publish_static_reaches_s3_through_the_standard_endpoint_variable(
    endpoint: str, s3: Any, bucket: str
) -> None:
    first = _make(f"STATIC_BUCKET={bucket}", endpoint=endpoint)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["bucket"] == bucket
    assert len(summary["uploaded"]) == len(EXPECTED_DOCS)
    for key in summary["uploaded"]:
        assert s3.head_object(Bucket=bucket, Key=key)["CacheControl"] == IMMUTABLE

    second = _make(f"STATIC_BUCKET={bucket}", endpoint=endpoint)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert (again["uploaded"], again["invalidated"]) == ([], [])


def test_make_publish_static_without_a_bucket_says_what_to_set(endpoint: str) -> None:
    result = _make(endpoint=endpoint)
    assert result.returncode != 0
    assert "set STATIC_BUCKET=<bucket>" in result.stderr


def test_a_missing_bucket_fails_naming_it(endpoint: str) -> None:
    result = _make("STATIC_BUCKET=no-such-bucket", endpoint=endpoint)
    assert result.returncode != 0
    assert "no-such-bucket" in result.stderr
    assert "NoSuchBucket" in result.stderr
