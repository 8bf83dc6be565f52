"""A scored batch's findings -> incident updates (pure): the scoring worker's half of incidents.

Each finding joins its identity's open incident of its family (detectors/incidents.py), kept in
the identity's state (`IdentityState.incidents`), so incidents are in the same Kafka transaction
as the scores and findings that made them and survive a kill -9 exactly once. A batch gives one
update per incident it touched (its state after the batch), plus a close for each incident a
later finding found quiet. An incident asks for its page once, when a rule first makes it high;
the delivery agent's pager decides whether it pages (the daily budget) or waits in the digest.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from aiaudit.detectors.features import IdentityState
from aiaudit.detectors.incidents import QUIET_S, Incident, family_of, incident_from_dict, incident_to_dict, join
from aiaudit.pipeline.score.step import Scored


@dataclass
class IncidentUpdate:
    incident: Incident
    activity: str  # "create" (opened in this batch), "update", "close" (a later finding found it quiet)
    page: bool  # this update asks for the incident's page (once per incident)
    last: Scored  # the latest finding that changed it (the record an analyst opens first)


def group(scored: Sequence[Scored], states: MutableMapping[str, IdentityState], *,
          quiet_s: float = QUIET_S) -> list[IncidentUpdate]:
    """The incident updates of a scored batch, in the order they first changed; `states` (the
    batch's, holding every scored identity) keep each identity's open incidents."""
    out: dict[str, IncidentUpdate] = {}
    for s in scored:
        if s.finding is None or s.severity is None or not s.detectors:
            continue
        state = states.get(s.actor_id)
        if state is None:  # scored identities are in the batch's states: a caller's mistake, not data
            raise KeyError(f"no state for {s.actor_id!r}")
        family = family_of(s.detectors)  # only its family's incident is read (join changes no other)
        saved = state.incidents.get(family)
        open_ = {family: incident_from_dict(saved)} if saved is not None else {}
        change = join(open_, s.actor_id, list(s.detectors), s.severity, s.score, s.at, f"{s.origin}#{s.seq}",
                      quiet_s=quiet_s)
        inc = change.incident
        if change.pages:
            inc.paged = True  # asked for once; the pager decides
        if change.closed is not None:
            closed = change.closed
            prior = out.get(closed.uid)
            out[closed.uid] = IncidentUpdate(closed, "close", prior.page if prior else False, prior.last if prior else s)
        prior = out.get(inc.uid)
        out[inc.uid] = IncidentUpdate(inc, "create" if change.kind == "opened" or (prior and prior.activity == "create")
                                      else "update", change.pages or bool(prior and prior.page), s)
        state.incidents = {**state.incidents, inc.family: incident_to_dict(inc)}
    return list(out.values())
