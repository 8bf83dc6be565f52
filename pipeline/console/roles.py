"""Console roles and what each may see and do (pure).

Console roles are the console's own, never a gateway caller's role: an auditor reads, exports and
makes reports; the SOC works incidents and alerts; an analyst queries records; an admin does all.
"""

from __future__ import annotations

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
        ("policies", "/policies", "Policies"), ("reports", "/reports", "Reports"), ("keys", "/keys", "Keys and trust"),
        ("access", "/access", "Access records"))


def can(role: str, what: str) -> bool:
    """Whether `role` may see or do `what` (a key of ALLOWED; anything else: no one)."""
    if what not in ALLOWED:
        return False
    return role == "admin" or role in ALLOWED[what]


def menu(role: str) -> list[tuple[str, str]]:
    """(path, label) of the pages `role` may open, in menu order."""
    return [(path, label) for what, path, label in MENU if can(role, what)]
