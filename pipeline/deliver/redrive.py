"""Re-driving dead-lettered deliveries: `aiaudit alerts redeliver` (pure selection, then one write).

A delivery goes to the dead-letter topic after its destination's last attempt, finding whole.
Once the destination is fixed, an operator re-drives it: the newest dead letter of each delivery
(optionally of one destination, or one finding) becomes a retry on the agent's retries topic,
in the partition of its alert (the agent's tables follow the alerts' partitions), marked as a
re-drive by whom (recorded in the delivery's record, shown by `aiaudit alerts history`). The agent gives a re-drive exactly one more attempt, under the same delivery id, and
only to a delivery whose state is still the dead letter it came from (policy.retry_step): a
delivery delivered since, or re-driven twice, is skipped; one that fails again is dead-lettered
again and can be re-driven later.

A dead-letter message is input like any other: bounded, strictly shaped, its finding read as
strictly as an alerts-topic message. Dead letters that cannot be re-driven (an unreadable
alerts message; a destination no longer configured; one written before the alert's partition
was recorded) are counted with the reason, never guessed at.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from aiaudit.pipeline.deliver.formats import Unreadable, parse_finding, uid_of

MAX_DEAD_LETTER_BYTES = 2 * 1_048_576
MAX_ATTEMPT = 1000  # beyond any destination's max_attempts plus re-drives
_UID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Redrive:
    partition: int  # the alert's partition: the retries topic's partition for it
    job: dict[str, Any]  # the retries-topic message (the agent's own shape, with "redrive_by": who)

    @property
    def delivery_uid(self) -> str:
        return str(self.job["delivery_uid"])


@dataclass
class Plan:
    redrives: list[Redrive] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> dead letters not re-driven


def dead_letter(value: bytes | None, partitions: int) -> tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(alert partition, delivery record, finding, its signature) of a dead letter the agent wrote after a last
    attempt. Raises Unreadable saying why this one cannot be re-driven."""
    if not value or len(value) > MAX_DEAD_LETTER_BYTES:
        raise Unreadable(f"empty or larger than {MAX_DEAD_LETTER_BYTES:,} bytes")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise Unreadable("not JSON") from None
    if not isinstance(doc, dict):
        raise Unreadable("not a JSON object")
    if "requests" in doc:
        raise Unreadable("a batch of request events: not re-driven here (`aiaudit query --format ocsf` gives them)")
    if "delivery" not in doc:
        reason = doc.get("reason")
        raise Unreadable(f"no delivery to re-drive ({reason[:80]})" if isinstance(reason, str) else
                         "no delivery to re-drive")
    if "partition" not in doc:
        raise Unreadable("written before dead letters recorded the alert's partition")
    delivery, partition = doc["delivery"], doc["partition"]
    if type(partition) is not int or not 0 <= partition < partitions:
        raise Unreadable(f"alert partition {partition!r} is not one of the {partitions} partitions")
    if not isinstance(delivery, dict):
        raise Unreadable("delivery is not an object")
    uid, dest, attempt = delivery.get("delivery_uid"), delivery.get("destination"), delivery.get("attempt")
    if not (isinstance(uid, str) and _UID.fullmatch(uid) and isinstance(dest, str) and 0 < len(dest) <= 64
            and type(attempt) is int and 1 <= attempt < MAX_ATTEMPT):
        raise Unreadable("delivery uid, destination or attempt malformed")
    finding = parse_finding(orjson.dumps(doc.get("finding")))
    if delivery.get("finding_uid") != uid_of(finding):
        raise Unreadable("the delivery is not of the finding beside it")
    sig = doc.get("sig")
    if not isinstance(sig, dict):  # the agent checks it again before it sends anything
        raise Unreadable("written before findings were signed: no scoring worker's signature to carry")
    return partition, delivery, finding, sig


def plan_redrives(values: Iterable[bytes | None], partitions: int, *, now: float, by: str,
                  destination: str | None = None, finding_uid: str | None = None) -> Plan:
    """The retries to write for the dead letters `values` (the topic in order): the newest dead
    letter of each delivery, of `destination` and of `finding_uid` when given; `by` (who re-drives)
    goes into each delivery's record."""
    if not 0 < len(by) <= 128:
        raise ValueError("who re-drives (--by) must be 1 to 128 characters")
    plan, newest = Plan(), {}
    for value in values:
        try:
            partition, delivery, finding, sig = dead_letter(value, partitions)
        except Unreadable as exc:
            plan.skipped[str(exc)] += 1
            continue
        if destination is not None and delivery["destination"] != destination:
            continue
        if finding_uid is not None and uid_of(finding) != finding_uid:
            continue
        uid = delivery["delivery_uid"]
        if uid in newest:
            plan.skipped["an older dead letter of a delivery dead-lettered again"] += 1
        newest[uid] = Redrive(partition, {"delivery_uid": uid, "destination": delivery["destination"],
                                          "attempt": delivery["attempt"] + 1, "due": now, "finding": finding,
                                          "sig": sig, "redrive_by": by})
    plan.redrives = list(newest.values())
    return plan
