"""Per-route policies as code (pure): load and validate a YAML bundle, decide a request.

A bundle (see examples/gateway/policy.yaml):

    policy_id: acme-ai-use
    version: "2026.11.0"                 # declared by the author
    default_level: internal              # level of text in which nothing was found
    org_terms: [{name: falcon, pattern: "project falcon", level: restricted}]
    vendors:                             # the most sensitive data each vendor may receive
      openai: {max_level: internal}
      local-llm: {max_level: restricted}
    retention_days: {standard: 90}
    routes:
      default:
        roles: [engineer]                # roles allowed on the route
        vendors: {openai: ["gpt-4o*"]}   # vendor -> model patterns the route may call
        redact: ["pii.*"]                # categories removed before forwarding
        deny: ["secret.*"]               # categories that refuse the request
        reroute: {vendor: local-llm, model: llama-3-70b}   # where data above a vendor's level goes
        retention_scope: standard         # a key of retention_days
        content: commitments             # none | commitments | full
        fail: closed                     # closed: no evidence, no answer; open: answer anyway

The policy version recorded in every event is `<declared>+sha256.<hex>`, the hash taken over
the bundle's RFC 8785 canonical JSON, so a reformatted file keeps its version and any change
of meaning changes it. A file that does not validate raises PolicyError naming the field;
the caller keeps the bundle it had.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiaudit.pipeline.contract.schema import DECISIONS, LEVEL_RANK, LEVELS
from aiaudit.pipeline.errors import PolicyError
from aiaudit.pipeline.gateway.classify import Classification, Classifier, OrgTerm
from aiaudit.pipeline.jcs import canonicalize

# Built from the contract's enums, so a policy file can only name levels the event can carry.
Level = Literal[LEVELS]  # type: ignore[valid-type]  # a runtime tuple: Literal["public", ...] from the schema
DecisionName = Literal[DECISIONS]  # type: ignore[valid-type]  # likewise: allow, deny, redact, reroute
MAX_POLICY_BYTES = 1_048_576


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrgTermSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    pattern: str = Field(min_length=1, max_length=1000)
    level: Level = "confidential"


class VendorRule(_Strict):
    max_level: Level = "internal"


class Reroute(_Strict):
    vendor: str
    model: str


class RoutePolicy(_Strict):
    roles: list[str] = Field(min_length=1)
    vendors: dict[str, list[str]] = Field(min_length=1)
    redact: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    reroute: Reroute | None = None
    retention_scope: str = "standard"
    content: Literal["none", "commitments", "full"] = "commitments"
    # A denied request keeps no content (nor commitment) unless the route keeps it for investigation.
    keep_denied_content: bool = False
    # Top-level request fields beyond the known OpenAI ones that this route forwards (their
    # strings are still classified); any other unknown field is refused.
    extra_fields: list[str] = Field(default_factory=list, max_length=64)
    fail: Literal["closed", "open"] = "closed"


class PolicyBundle(_Strict):
    policy_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")
    version: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    default_level: Level = "internal"
    org_terms: list[OrgTermSpec] = Field(default_factory=list)
    vendors: dict[str, VendorRule] = Field(min_length=1)
    routes: dict[str, RoutePolicy] = Field(min_length=1)
    # Days content (or its commitment key) is kept for each retention scope the routes name.
    retention_days: dict[str, int] = Field(default_factory=lambda: {"standard": 90})

    @field_validator("routes")
    @classmethod
    def _route_names(cls, routes: dict[str, RoutePolicy]) -> dict[str, RoutePolicy]:
        for name in routes:
            if not name or len(name) > 64 or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"route name {name!r}: use letters, digits, - and _ (at most 64)")
        return routes

    @model_validator(mode="after")
    def _vendors_declared(self) -> PolicyBundle:
        for name, route in self.routes.items():
            for vendor in [*route.vendors, *([route.reroute.vendor] if route.reroute else [])]:
                if vendor not in self.vendors:
                    raise ValueError(f"route {name!r} names vendor {vendor!r}, which is not under `vendors`")
            if route.retention_scope not in self.retention_days:
                raise ValueError(f"route {name!r} names retention scope {route.retention_scope!r}, "
                                 "which is not under `retention_days`")
        return self


@dataclass(frozen=True)
class Policy:
    """A validated bundle with its version and the classifier its org terms define."""

    bundle: PolicyBundle
    version: str  # <declared>+sha256.<hex of the canonical JSON>
    canonical_json: bytes
    source_text: str
    classifier: Classifier = field(compare=False)

    @property
    def policy_id(self) -> str:
        return self.bundle.policy_id

    def route(self, name: str) -> RoutePolicy | None:
        return self.bundle.routes.get(name)


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Validate a YAML bundle. Raises PolicyError naming the file and the field at fault."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"{source}: larger than {MAX_POLICY_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping with policy_id, version, vendors and routes")
    try:
        bundle = PolicyBundle.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise PolicyError(_all_of(source, problems)) from exc
    try:
        classifier = Classifier([OrgTerm(t.name, t.pattern, t.level) for t in bundle.org_terms], bundle.default_level)
    except Exception as exc:  # re.error from an org term's pattern
        raise PolicyError(f"{source}: org_terms: bad pattern: {exc}") from exc
    unknown = _unknown_category_patterns(bundle, classifier.categories)
    if unknown:
        raise PolicyError(_all_of(source, unknown) + f"\n  known categories: {', '.join(classifier.categories)}")
    dumped = bundle.model_dump(mode="json")
    for route in dumped["routes"].values():  # added later: absent when off, so older bundles keep their versions
        if not route["keep_denied_content"]:
            del route["keep_denied_content"]
        if not route["extra_fields"]:
            del route["extra_fields"]
    canon = canonicalize(dumped)
    version = f"{bundle.version}+sha256.{hashlib.sha256(canon).hexdigest()}"
    return Policy(bundle, version, canon, text, classifier)


def _all_of(source: str, problems: list[str]) -> str:
    """Every problem of a file in one message, one per line (a user fixes them all in one go)."""
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)


def _unknown_category_patterns(bundle: PolicyBundle, known: tuple[str, ...]) -> list[str]:
    """Each redact/deny pattern that matches no category the classifier reports: a typo such as
    `secrets.*` or `pii.emial` would otherwise let secrets or e-mail addresses through."""
    out = []
    for name, route in bundle.routes.items():
        for field_name in ("deny", "redact"):
            for i, pattern in enumerate(getattr(route, field_name)):
                if not any(fnmatch.fnmatchcase(c, pattern) for c in known):
                    out.append(f"routes.{name}.{field_name}[{i}]: {pattern!r} matches no category")
    return out


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class Target:
    vendor: str
    model: str


@dataclass(frozen=True)
class Decision:
    """What to do with one request, and why (each reason a short readable sentence)."""

    decision: DecisionName
    reasons: tuple[str, ...]
    target: Target | None  # where to send it; None when denied
    redact_categories: frozenset[str] = frozenset()


def resolve_target(route: RoutePolicy, requested_model: str) -> Target | None:
    """The vendor and model a request names: `vendor/model`, or the first vendor of the route whose
    model patterns match."""
    if "/" in requested_model:
        vendor, model = requested_model.split("/", 1)
        if vendor in route.vendors:
            return Target(vendor, model)
    for vendor, patterns in route.vendors.items():
        if _matches(requested_model, patterns):
            return Target(vendor, requested_model)
    return None


def decide(policy: Policy, route_name: str, role: str, requested_model: str, prompt: Classification) -> Decision:
    """The policy decision for a request (pure).

    Order: route exists, role allowed, model allowed, denied categories, redaction, then the
    vendor's level (reroute if the route names a vendor that may receive it, else deny).
    """
    route = policy.route(route_name)
    if route is None:
        return Decision("deny", (f"route {route_name!r} is not in policy {policy.policy_id}",), None)
    if role not in route.roles:
        return Decision("deny", (f"role {role!r} may not use route {route_name!r}",), None)
    target = resolve_target(route, requested_model)
    if target is None or not _matches(target.model, route.vendors[target.vendor]):
        return Decision("deny", (f"model {requested_model!r} is not allowed on route {route_name!r}",), None)
    denied = [c for c in prompt.categories if _matches(c, route.deny)]
    if denied:
        return Decision("deny", tuple(f"{c} in prompt is denied on route {route_name!r}" for c in denied), None)
    reasons: list[str] = []
    redacted = frozenset(c for c in prompt.categories if _matches(c, route.redact))
    level = prompt.level
    if redacted:
        reasons.extend(f"{c} redacted" for c in sorted(redacted))
        remaining = [c for c in prompt.categories if c not in redacted]
        level = _level_after(policy, remaining)
    allowed = policy.bundle.vendors[target.vendor].max_level
    if LEVEL_RANK[level] > LEVEL_RANK[allowed]:
        rr = route.reroute
        if rr is not None and LEVEL_RANK[level] <= LEVEL_RANK[policy.bundle.vendors[rr.vendor].max_level]:
            reasons.append(f"{level} data may not go to {target.vendor} (max {allowed}); rerouted to {rr.vendor}")
            return Decision("reroute", tuple(reasons), Target(rr.vendor, rr.model), redacted)
        reasons.append(f"{level} data may not go to {target.vendor} (max {allowed})")
        return Decision("deny", tuple(reasons), None)
    if redacted:
        return Decision("redact", tuple(reasons), target, redacted)
    return Decision("allow", ("within policy",), target)


def _level_after(policy: Policy, categories: list[str]) -> str:
    """The level of what remains once some categories are redacted."""
    rank = max([LEVEL_RANK[policy.bundle.default_level], *(LEVEL_RANK[policy.classifier.level_of(c)] for c in categories)])
    return LEVELS[rank]


def bundle_message(policy: Policy, *, loaded_at: str, gateway_id: str) -> dict[str, Any]:
    """What is published when a bundle is loaded: enough to fetch the exact policy behind a record."""
    return {"policy_id": policy.policy_id, "policy_version": policy.version, "declared_version": policy.bundle.version,
            "canonical_json": policy.canonical_json.decode(), "source_yaml": policy.source_text,
            "loaded_at": loaded_at, "gateway_id": gateway_id}


def bundle_problems(version: str, canonical_json: str, source_yaml: str) -> list[str]:
    """Why a stored bundle is not the one `version` names (empty when it is): the version's hash
    must be SHA-256 of the stored canonical JSON, and the stored YAML must parse to that version.
    A store writer can change rows; a bundle that does not hash to its name is not evidence."""
    problems = []
    _, sep, digest = version.partition("+sha256.")
    computed = hashlib.sha256(canonical_json.encode()).hexdigest()
    if not sep or digest != computed:
        problems.append(f"its canonical JSON hashes to sha256.{computed}, not to the version's "
                        f"{'sha256.' + digest if sep else 'hash (the version has none)'}")
    if _kind(canonical_json) in DOCUMENT_KINDS:  # a LiteLLM proxy's config, the OTLP receiver's settings
        try:
            shown = canonicalize(yaml.safe_load(source_yaml))
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            problems.append(f"the stored YAML does not parse: {str(exc)[:200]}")
        else:
            if shown != canonical_json.encode():
                problems.append("the stored YAML is not the document its canonical JSON holds")
        return problems
    try:
        parsed = parse_policy(source_yaml, source="the stored YAML").version
    except PolicyError as exc:
        problems.append(f"the stored YAML is not a valid bundle: {str(exc)[:200]}")
    else:
        if parsed != version:
            problems.append(f"the stored YAML is version {parsed}")
    return problems


PROXY_CONFIG_KIND = "litellm-proxy-config"  # a bundle made from a LiteLLM proxy's config, secrets stripped
OTLP_CONFIG_KIND = "otlp-receiver-config"  # the OTLP receiver's settings (pipeline/otlp): what it observes, for whom
DOCUMENT_KINDS = (PROXY_CONFIG_KIND, OTLP_CONFIG_KIND)  # bundles whose YAML is their document, not a gateway policy


def _kind(canonical_json: str) -> str | None:
    """The `kind` a bundle's canonical JSON names (None for the gateway's own bundles, which have none)."""
    try:
        doc = json.loads(canonical_json)
    except ValueError:
        return None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) else None
