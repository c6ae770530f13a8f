"""HTTP caching of the read-mostly public responses: /v1/prices and the JWKS.

Each carries Cache-Control and a strong ETag of its exact body; a client (or CloudFront)
revalidating with If-None-Match gets an empty 304; the ETag is the same on every instance that
serves the same representation and changes with it.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from api.auth.keys import generate_private_key_pem
from tests.conftest import TEST_JWT_PRIVATE_KEY, AppHarness, make_settings

CACHED_PATHS = ("/v1/prices", "/.well-known/jwks.json")


@pytest.fixture(scope="module")
async def cache_app(app_harness: AppHarness, sqlite_url: str) -> FastAPI:
    return await app_harness.start(make_settings(sqlite_url))


async def _get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    async with AppHarness.client(app) as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize("path", CACHED_PATHS)
async def test_the_response_is_cacheable_with_a_strong_etag(cache_app: FastAPI, path: str) -> None:
    response = await _get(cache_app, path)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    # Strong: quoted, without W/.
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])
    assert response.json()


@pytest.mark.parametrize("path", CACHED_PATHS)
@pytest.mark.parametrize("if_none_match", ["{etag}", "W/{etag}", '"other", {etag}', "*"], ids=str)
async def test_a_matching_if_none_match_gets_an_empty_304(
    cache_app: FastAPI, path: str, if_none_match: str
) -> None:
    etag = (await _get(cache_app, path)).headers["etag"]

    response = await _get(cache_app, path, **{"If-None-Match": if_none_match.format(etag=etag)})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "public, max-age=300"


@pytest.mark.parametrize("path", CACHED_PATHS)
async def test_a_stale_etag_gets_the_body(cache_app: FastAPI, path: str) -> None:
    response = await _get(cache_app, path, **{"If-None-Match": '"0123456789abcdef"'})

    assert response.status_code == 200
    assert response.json()


async def test_the_jwks_etag_is_shared_by_instances_and_changes_with_the_keys(
    app_harness: AppHarness, sqlite_url: str, cache_app: FastAPI
) -> None:
    same_keys = await app_harness.start(make_settings(sqlite_url))
    rotated = await app_harness.start(
        make_settings(
            sqlite_url, jwt_private_keys=generate_private_key_pem() + TEST_JWT_PRIVATE_KEY
        )
    )
    path = "/.well-known/jwks.json"
    first = (await _get(cache_app, path)).headers["etag"]

    assert (await _get(same_keys, path)).headers["etag"] == first
    after_rotation = await _get(rotated, path, **{"If-None-Match": first})
    assert after_rotation.status_code == 200
    assert len(after_rotation.json()["keys"]) == 2
