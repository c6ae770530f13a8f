"""CloudFront: static assets from S3 via OAC, the API uncached but for its two public documents,
HTTPS with TLS 1.2+, WAF in prod."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._certificates import alias_records, validated_certificate
from infra_pulumi.components._shared import child, tags
from infra_pulumi.config import StackConfig

# AWS managed policies (stable ids documented by CloudFront).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
# Every viewer header (Authorization, Idempotency-Key, Stripe-Signature, ...) except Host,
# which must be the origin's own name for TLS and for Lambda function URLs; AWS's managed
# AllViewerExceptHostHeader also adds CloudFront's viewer headers, CloudFront-Viewer-Address
# (the viewer's "ip:port") among them.
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
# CloudFront adds it to every request to the API origin (agreed with the app: api settings
# ORIGIN_VERIFY_SECRET); a request without it did not come through this distribution.
ORIGIN_VERIFY_HEADER = "X-Origin-Verify"
CLOUDFRONT_ZONE_ID = "Z2FDTNDATAQYW2"
# Paths answered by the API; everything else is a static asset.
API_PATHS = ("/v1/*", "/.well-known/*", "/healthz", "/readyz", "/docs", "/openapi.json")
# The API's public documents that change only with a deploy: the app sends them with
# `Cache-Control: public, max-age=300` and a strong ETag (api/http_caching.py), the same bytes
# for every caller. Their behaviours come before API_PATHS, whose first match would otherwise
# take them. Nothing else of the API is cached: its answers depend on the caller.
PUBLIC_CACHED_PATHS = ("/v1/prices", "/.well-known/jwks.json")
# The origin's Cache-Control decides; these only bound it. Without one CloudFront keeps an
# answer a minute, and never more than an hour whatever the origin says.
PUBLIC_CACHE_TTLS = {"min_ttl": 0, "default_ttl": 60, "max_ttl": 3600}
# The only request header the documents vary on: CORS echoes an allowed Origin (Vary: Origin).
# Never Authorization or cookies: the documents are the same for everyone, and a key on who
# asks would split the cache per caller.
PUBLIC_CACHE_KEY_HEADERS = ("Origin",)
STATIC_ORIGIN = "static"
API_ORIGIN = "api"
# Stripe's events can exceed the 8 KB that the common rule set's SizeRestrictions_BODY allows;
# the app caps bodies at 1 MiB and verifies signatures on these paths itself.
WEBHOOK_PATH_PREFIX = "/v1/webhooks/"
BODY_SIZE_RULE = "SizeRestrictions_BODY"
BODY_SIZE_LABEL = "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"

# Origin errors CloudFront must not cache (it does for 10 s by default).
UNCACHED_ERRORS = (500, 502, 503, 504)


class Cdn(pulumi.ComponentResource):
    distribution: aws.cloudfront.Distribution
    web_acl: aws.wafv2.WebAcl | None
    public_cache_policy: aws.cloudfront.CachePolicy

    def __init__(
        self,
        name: str,
        config: StackConfig,
        static_bucket_name: pulumi.Input[str],
        api_origin_domain: pulumi.Input[str],
        origin_verify: pulumi.Input[str],
        *,
        lambda_origin: bool,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:cdn:Cdn", name, None, opts)
        certificate_arn = validated_certificate(
            self, f"{name}-certificate", config, config.domain_name, region="us-east-1"
        )
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            name=f"{config.name_prefix}-static",
            description="CloudFront signs its requests to the static bucket",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child(self),
        )
        headers = aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-security-headers",
            name=f"{config.name_prefix}-security-headers",
            comment="HSTS, nosniff, frame denial, strict referrer",
            security_headers_config={
                "strict_transport_security": {
                    "access_control_max_age_sec": 63072000,
                    "include_subdomains": True,
                    "preload": True,
                    "override": True,
                },
                "content_type_options": {"override": True},
                "frame_options": {"frame_option": "DENY", "override": True},
                "referrer_policy": {
                    "referrer_policy": "strict-origin-when-cross-origin",
                    "override": True,
                },
                "xss_protection": {"protection": True, "mode_block": True, "override": True},
            },
            opts=child(self),
        )
        self.web_acl = self._web_acl(name, config) if config.waf_enabled else None
        self.public_cache_policy = self._public_cache_policy(name, config)

        def api_behaviour(path: str, cache_policy_id: pulumi.Input[str]) -> dict[str, Any]:
            # Same origin, origin request policy (viewer headers, CloudFront-Viewer-Address)
            # and origin secret for every API path; only the cache policy differs.
            return {
                "path_pattern": path,
                "target_origin_id": API_ORIGIN,
                "viewer_protocol_policy": "https-only",
                "allowed_methods": ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
                "cached_methods": ["GET", "HEAD"],
                "cache_policy_id": cache_policy_id,
                "origin_request_policy_id": ALL_VIEWER_EXCEPT_HOST,
                "response_headers_policy_id": headers.id,
                "compress": True,
            }

        # CloudFront takes the first behaviour whose pattern matches: the cached documents
        # first, then the rest of the API, uncached.
        api_behaviours = [
            *(api_behaviour(path, self.public_cache_policy.id) for path in PUBLIC_CACHED_PATHS),
            *(api_behaviour(path, CACHING_DISABLED) for path in API_PATHS),
        ]
        api_origin: dict[str, Any] = {
            "origin_id": API_ORIGIN,
            "domain_name": api_origin_domain,
            "custom_origin_config": {
                "http_port": 80,
                "https_port": 443,
                "origin_protocol_policy": "https-only",
                "origin_ssl_protocols": ["TLSv1.2"],
            },
            "custom_headers": [
                {"name": ORIGIN_VERIFY_HEADER, "value": pulumi.Output.secret(origin_verify)}
            ],
        }
        if lambda_origin:
            # The function URL takes only IAM-signed requests: CloudFront signs them (OAC).
            api_origin["origin_access_control_id"] = aws.cloudfront.OriginAccessControl(
                f"{name}-lambda-oac",
                name=f"{config.name_prefix}-api",
                description="CloudFront signs its requests to the API function URL",
                origin_access_control_origin_type="lambda",
                signing_behavior="always",
                signing_protocol="sigv4",
                opts=child(self),
            ).id
        origins: Any = [
            {
                "origin_id": STATIC_ORIGIN,
                "domain_name": pulumi.Output.from_input(static_bucket_name).apply(
                    lambda bucket: f"{bucket}.s3.{config.region}.amazonaws.com"
                ),
                "origin_access_control_id": oac.id,
            },
            api_origin,
        ]
        # Nested settings are plain dicts; pulumi-aws's TypedDicts are too strict for mypy here.
        settings: dict[str, Any] = {
            "enabled": True,
            "comment": f"{config.name_prefix}: static assets and API",
            "aliases": [config.domain_name],
            "is_ipv6_enabled": True,
            "http_version": "http2and3",
            "price_class": "PriceClass_All" if config.is_prod else "PriceClass_100",
            "origins": origins,
            "default_cache_behavior": {
                "target_origin_id": STATIC_ORIGIN,
                "viewer_protocol_policy": "redirect-to-https",
                "allowed_methods": ["GET", "HEAD", "OPTIONS"],
                "cached_methods": ["GET", "HEAD"],
                "cache_policy_id": CACHING_OPTIMIZED,
                "response_headers_policy_id": headers.id,
                "compress": True,
            },
            "ordered_cache_behaviors": api_behaviours,
            # CloudFront keeps an origin's 5xx for 10 s by default, on cached behaviours too: a
            # /v1/prices that failed once would fail for everyone. Errors pass through as the
            # API wrote them (no replacement page) and are never cached.
            "custom_error_responses": [
                {"error_code": code, "error_caching_min_ttl": 0} for code in UNCACHED_ERRORS
            ],
            "restrictions": {"geo_restriction": {"restriction_type": "none"}},
            "viewer_certificate": {
                "acm_certificate_arn": certificate_arn,
                "ssl_support_method": "sni-only",
                "minimum_protocol_version": "TLSv1.2_2021",
            },
            "web_acl_id": self.web_acl.arn if self.web_acl else None,
            "tags": tags(config, "cdn"),
        }
        self.distribution = aws.cloudfront.Distribution(
            f"{name}-distribution", opts=child(self), **settings
        )
        alias_records(
            self,
            f"{name}-alias",
            config,
            config.domain_name,
            self.distribution.domain_name,
            CLOUDFRONT_ZONE_ID,
        )
        self.register_outputs(
            {"domainName": self.distribution.domain_name, "arn": self.distribution.arn}
        )

    def _public_cache_policy(self, name: str, config: StackConfig) -> aws.cloudfront.CachePolicy:
        """Caches the public documents as long as their Cache-Control says (within
        PUBLIC_CACHE_TTLS), keyed on nothing of the caller but Origin. CloudFront keeps the
        ETag: it answers a viewer's matching If-None-Match with 304 itself and revalidates an
        expired copy with the origin conditionally."""
        settings: dict[str, Any] = {
            "name": f"{config.name_prefix}-public-documents",
            "comment": "Public API documents: the origin's Cache-Control; no caller in the key",
            **PUBLIC_CACHE_TTLS,
            "parameters_in_cache_key_and_forwarded_to_origin": {
                "cookies_config": {"cookie_behavior": "none"},
                "headers_config": {
                    "header_behavior": "whitelist",
                    "headers": {"items": list(PUBLIC_CACHE_KEY_HEADERS)},
                },
                "query_strings_config": {"query_string_behavior": "none"},
                # Compressed copies are cached separately; `compress` needs these.
                "enable_accept_encoding_gzip": True,
                "enable_accept_encoding_brotli": True,
            },
        }
        return aws.cloudfront.CachePolicy(f"{name}-public-documents", opts=child(self), **settings)

    def _allowlist_rule(self, name: str, config: StackConfig) -> dict[str, Any]:
        """Lets an agreed tester's addresses through before any other rule (slipway:
        wafAllowedCidrs, set for a penetration test's window and removed after it), so the
        test exercises the application rather than the managed rules and the rate limit."""
        statements = []
        for version in sorted({_ip_version(cidr) for cidr in config.waf_allowed_cidrs}):
            ip_set = aws.wafv2.IpSet(
                f"{name}-waf-allowed-{version.lower()}",
                name=f"{config.name_prefix}-allowed-{version.lower()}",
                description="Addresses let through the WAF (slipway:wafAllowedCidrs)",
                scope="CLOUDFRONT",
                region="us-east-1",
                ip_address_version=version,
                addresses=[c for c in config.waf_allowed_cidrs if _ip_version(c) == version],
                tags=tags(config, "waf-allowed"),
                opts=child(self),
            )
            statements.append({"ip_set_reference_statement": {"arn": ip_set.arn}})
        statement = (
            statements[0] if len(statements) == 1 else {"or_statement": {"statements": statements}}
        )
        return {
            "name": "allowed-testers",
            "priority": 0,
            "action": {"allow": {}},
            "statement": statement,
            "visibility_config": _visibility("allowed-testers"),
        }

    def _web_acl(self, name: str, config: StackConfig) -> aws.wafv2.WebAcl:
        def managed(rule: str, priority: int, count_only: tuple[str, ...] = ()) -> dict[str, Any]:
            group: dict[str, Any] = {"vendor_name": "AWS", "name": rule}
            if count_only:
                # Counted rules still label the request; a rule of ours decides on the label.
                group["rule_action_overrides"] = [
                    {"name": name, "action_to_use": {"count": {}}} for name in count_only
                ]
            return {
                "name": rule,
                "priority": priority,
                "override_action": {"none": {}},
                "statement": {"managed_rule_group_statement": group},
                "visibility_config": _visibility(rule),
            }

        # SizeRestrictions_BODY, except on the webhook paths: AWS's documented pattern of
        # counting the managed rule and blocking on its label with a scope of our own.
        large_bodies = {
            "name": "large-body-outside-webhooks",
            "priority": 3,
            "action": {"block": {}},
            "statement": {
                "and_statement": {
                    "statements": [
                        {"label_match_statement": {"scope": "LABEL", "key": BODY_SIZE_LABEL}},
                        {
                            "not_statement": {
                                "statement": {
                                    "byte_match_statement": {
                                        "field_to_match": {"uri_path": {}},
                                        "positional_constraint": "STARTS_WITH",
                                        "search_string": WEBHOOK_PATH_PREFIX,
                                        "text_transformations": [{"priority": 0, "type": "NONE"}],
                                    }
                                }
                            }
                        },
                    ]
                }
            },
            "visibility_config": _visibility("large-body-outside-webhooks"),
        }

        rules = [
            managed("AWSManagedRulesAmazonIpReputationList", 1),
            managed("AWSManagedRulesCommonRuleSet", 2, count_only=(BODY_SIZE_RULE,)),
            large_bodies,
            managed("AWSManagedRulesKnownBadInputsRuleSet", 4),
            {
                "name": "rate-per-ip",
                "priority": 5,
                "action": {"block": {}},
                "statement": {
                    "rate_based_statement": {
                        "limit": config.waf_rate_limit_per_5min,
                        "aggregate_key_type": "IP",
                    }
                },
                "visibility_config": _visibility("rate-per-ip"),
            },
        ]
        if config.waf_allowed_cidrs:
            rules.insert(0, self._allowlist_rule(name, config))
        settings: dict[str, Any] = {
            "name": f"{config.name_prefix}-edge",
            "description": "AWS managed rules and a per-IP rate limit in front of CloudFront",
            "scope": "CLOUDFRONT",
            "region": "us-east-1",
            "default_action": {"allow": {}},
            "rules": rules,
            "visibility_config": _visibility(f"{config.name_prefix}-edge"),
            "tags": tags(config, "waf"),
        }
        return aws.wafv2.WebAcl(f"{name}-waf", opts=child(self), **settings)


def _ip_version(cidr: str) -> str:
    return "IPV6" if ":" in cidr else "IPV4"


def _visibility(metric: str) -> dict[str, Any]:
    return {
        "cloudwatch_metrics_enabled": True,
        "metric_name": metric.replace("_", "-")[:128],
        "sampled_requests_enabled": True,
    }
