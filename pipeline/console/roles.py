"""Console roles and what each may see and do (pure).

Console roles are the console's own, never a gateway caller's role: an auditor reads, exports and
makes reports; the SOC works incidents and alerts; an analyst queries records; an admin does all.
"""

from __future__ import annotations

from collections.abc import Sequence

ROLES = ("auditor", "soc", "analyst", "admin")

# What a page or an action needs: the roles allowed it (admin is allowed everything).
ALLOWED: dict[str, frozenset[str]] = {
    "overview": frozenset(ROLES),
    "records": frozenset({"auditor", "analyst"}),
    "proof": frozenset({"auditor", "analyst"}),
    "incidents": frozenset({"soc", "auditor"}),  # an auditor samples "detected and resolved"
    "incident_change": frozenset({"soc"}),
    "policies": frozenset({"auditor", "analyst"}),
    "reports": frozenset({"auditor"}),
    "keys": frozenset({"auditor", "soc"}),
    "access": frozenset({"auditor"}),
}
# The menu, in order: (what it needs, path, label).
MENU = (("overview", "/", "Overview"), ("records", "/records", "Records"), ("incidents", "/incidents", "Incidents"),
        ("incidents", "/alerts", "Alerts"),
        ("policies", "/policies", "Policies"), ("reports", "/reports", "Reports"), ("keys", "/keys", "Keys and trust"),
        ("access", "/access", "Access records"))


def can(held: str | Sequence[str], what: str) -> bool:
    """Whether a person holding `held` (one role, or several) may see or do `what` (a key of
    ALLOWED; anything else: no one)."""
    if what not in ALLOWED:
        return False
    held = (held,) if isinstance(held, str) else tuple(held)
    return "admin" in held or any(role in ALLOWED[what] for role in held)


def menu(held: str | Sequence[str]) -> list[tuple[str, str]]:
    """(path, label) of the pages `held` may open, in menu order."""
    return [(path, label) for what, path, label in MENU if can(held, what)]


def console_roles(values: object) -> tuple[str, ...]:
    """The console roles among a claim's values (a string or a list of strings), in ROLES order;
    anything else in it is not a console role and counts for nothing."""
    given = [values] if isinstance(values, str) else values if isinstance(values, list) else []
    return tuple(r for r in ROLES if r in given)
