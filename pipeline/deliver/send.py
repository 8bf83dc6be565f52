"""Sending one finding to one destination (asyncio I/O): HTTP for the webhook, Splunk HEC and chat
forms, TCP or TLS for syslog. One attempt per call; the caller decides about retries
(policy.retry_after) and records what came back (a DeliveryRecord per attempt).

Redirects are never followed (a receiver that answers 3xx has moved, or is not the receiver);
TLS to a syslog receiver verifies its certificate against the destination's CA file, or the
system's; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from aiaudit.pipeline.deliver.formats import (
    chat_message,
    octet_counted,
    splunk_hec_body,
    syslog_message,
    uid_of,
    webhook_request,
)
from aiaudit.pipeline.deliver.policy import DeliveryRecord, Destination, Outcome, delivery_uid


@dataclass(frozen=True)
class Target:
    """A destination with where it is and its credentials (kept out of logs and records)."""

    destination: Destination
    url: str = ""  # webhook, splunk_hec, chat
    secret: bytes = b""  # webhook: the HMAC key; splunk_hec: the HEC token
    host: str = ""  # syslog
    port: int = 0
    tls: bool = False
    ca_file: Path | None = None  # syslog over TLS: the CA that signed the receiver's certificate
    hostname: str = "aiaudit"  # HOSTNAME in syslog headers; `host` in HEC events

    def __repr__(self) -> str:  # never print the secret
        return f"Target({self.destination.name}, {self.destination.kind}, {self.url or f'{self.host}:{self.port}'})"


async def send(session: aiohttp.ClientSession, target: Target, finding: dict[str, Any], *, attempt: int,
               now: float) -> DeliveryRecord:
    dest = target.destination
    uid = delivery_uid(dest, uid_of(finding))

    def record(outcome: Outcome, status: str, response: str) -> DeliveryRecord:
        return DeliveryRecord(uid, uid_of(finding), dest.name, outcome, attempt, now, status, response)

    try:
        if dest.kind == "syslog":
            await _syslog(target, syslog_message(finding, hostname=target.hostname), dest.timeout_s)
            return record("delivered", "sent", f"written over {'TLS' if target.tls else 'TCP'} "
                          "(syslog has no acknowledgement)")
        if dest.kind == "webhook":
            body, headers = webhook_request(finding, target.secret, uid, now)
        elif dest.kind == "splunk_hec":
            body, headers = splunk_hec_body(finding, host=target.hostname), {
                "Authorization": "Splunk " + target.secret.decode("ascii"), "Content-Type": "application/json"}
        else:
            body, headers = chat_message(finding), {"Content-Type": "application/json"}
        async with session.post(target.url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=dest.timeout_s)) as resp:
            text = (await resp.content.read(2000)).decode("utf-8", "replace")
            return record("delivered" if 200 <= resp.status < 300 else "failed", str(resp.status), text)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
        return record("failed", f"error: {type(exc).__name__}", str(exc)[:500])


async def _syslog(target: Target, message: bytes, timeout_s: float) -> None:
    await write_syslog(target, [message], timeout_s)


async def write_syslog(target: Target, messages: list[bytes], timeout_s: float) -> None:
    """Messages over one TCP or TLS connection, each octet-counted."""
    context = None
    if target.tls:
        context = ssl.create_default_context(cafile=str(target.ca_file) if target.ca_file else None)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(target.host, target.port, ssl=context,
                                server_hostname=target.host if context else None), timeout_s)
    try:
        for message in messages:
            writer.write(octet_counted(message))
        await asyncio.wait_for(writer.drain(), timeout_s)
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), timeout_s)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass
