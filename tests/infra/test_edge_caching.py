"""CloudFront caches the API's two public documents and nothing else of the API.

Which behaviour serves a path is resolved the way CloudFront resolves it: the first ordered
behaviour whose path pattern matches (`*` any characters, `?` one, case-sensitive), else the
default behaviour.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from infra_pulumi.plan import Plan
from tests.infra.conftest import one

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
CACHED = ("/v1/prices", "/.well-known/jwks.json")
UNCACHED = (
    "/v1/users/me",
    "/v1/payments",
    "/v1/prices/",  # another path: the documents' patterns are exact
    "/v1/prices/price_basic",
    "/v1/webhooks/stripe",
    "/.well-known/openid-configuration",
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
)
APP_MAX_AGE = 300  # api/http_caching.py: Cache-Control: public, max-age=300


def served_by(distribution: dict[str, Any], path: str) -> dict[str, Any]:
    for behaviour in distribution.get("orderedCacheBehaviors") or []:
        if fnmatchcase(path, behaviour["pathPattern"]):
            return dict(behaviour)
    return dict(distribution["defaultCacheBehavior"])


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_only_the_public_documents_are_cached(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    distribution = one(plan, DISTRIBUTION).props
    documents_policy = one(plan, CACHE_POLICY).props["id"]
    for path in CACHED:
        behaviour = served_by(distribution, path)
        assert behaviour["targetOriginId"] == "api", path
        assert behaviour["cachePolicyId"] == documents_policy, path
        # Cached or not, the origin sees the same request: viewer headers, origin secret.
        assert behaviour["originRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
        assert behaviour["compress"] is True
        assert behaviour["viewerProtocolPolicy"] == "https-only"
    for path in UNCACHED:
        behaviour = served_by(distribution, path)
        assert behaviour["targetOriginId"] == "api", path
        assert behaviour["cachePolicyId"] == CACHING_DISABLED, path


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_documents_cache_follows_the_origin_and_keys_on_no_caller(
    plans: dict[str, Plan], stack: str
) -> None:
    policy = one(plans[stack], CACHE_POLICY).props
    # The origin's max-age decides, within bounds: no floor, a small default, a ceiling.
    assert policy["minTtl"] == 0
    assert 0 < policy["defaultTtl"] <= APP_MAX_AGE <= policy["maxTtl"] <= 3600
    key = policy["parametersInCacheKeyAndForwardedToOrigin"]
    assert key["cookiesConfig"]["cookieBehavior"] == "none"
    assert key["queryStringsConfig"]["queryStringBehavior"] == "none"
    headers = key["headersConfig"]
    # CORS answers differ by Origin (Vary: Origin); nothing identifies the caller.
    assert headers["headerBehavior"] == "whitelist"
    assert headers["headers"]["items"] == ["Origin"]
    # Compression at the edge needs the encodings in the key.
    assert key["enableAcceptEncodingGzip"] is True
    assert key["enableAcceptEncodingBrotli"] is True


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_origin_errors_are_never_served_from_the_cache(plans: dict[str, Plan], stack: str) -> None:
    """CloudFront keeps an origin's 5xx for 10 s by default, even on a behaviour that caches:
    a /v1/prices that failed once would keep failing for everyone. Errors pass through as the
    API wrote them (problem+json, no replacement page) and are not cached."""
    distribution = one(plans[stack], DISTRIBUTION).props
    responses = {r["errorCode"]: r for r in distribution.get("customErrorResponses") or []}
    assert set(responses) >= {500, 502, 503, 504}
    for code in (500, 502, 503, 504):
        assert responses[code]["errorCachingMinTtl"] == 0, code
        assert "responsePagePath" not in responses[code], code
