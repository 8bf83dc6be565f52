"""The LiteLLM proxy callback: every proxy request (success, failure, guardrail block) as a signed
contract event on the requests topic, and the proxy's config, secrets stripped, as the policy
bundle each event names (docs/litellm.md).

In the proxy's config, beside a two-line file next to it (LiteLLM loads callbacks from there):

    # aiaudit_callback.py
    from aiaudit.pipeline.litellm.callback import AiauditLogger
    aiaudit = AiauditLogger()

    # config.yaml
    litellm_settings:
      callbacks: aiaudit_callback.aiaudit

It never holds a request up: LiteLLM calls it on its event loop, where it only puts the logging
payload on a bounded queue; a thread of its own classifies, signs and sends. While the broker is
away the emitter's buffer, then the queue, hold events; beyond both, new events are dropped,
counted (aiaudit_litellm_dropped_total{reason}) and logged, and the chain shows the gap in the
emitter's numbering.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import yaml
from litellm.integrations.custom_logger import CustomLogger  # type: ignore[import-not-found,unused-ignore]

from aiaudit.pipeline import metrics
from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from aiaudit.pipeline.gateway.classify import Classifier
from aiaudit.pipeline.gateway.event import commit, content_expiry, content_message, kept_content
from aiaudit.pipeline.litellm.mapping import DECLARED, Policy, config_policy, event_of, slim
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.litellm")
SEEN = 65_536  # call ids remembered, so a request LiteLLM reports twice (a failure and its hook) is one event
DROP_LOG_EVERY_S = 60.0
CONFIG_CHECK_EVERY_S = 10.0
PUBLISH_RETRY_S = 30.0


def _litellm_version() -> str:
    try:
        from importlib.metadata import version

        return version("litellm")
    except Exception:  # noqa: BLE001  # the version is informational
        return "unknown"


def _proxy_config_file() -> Path | None:
    """The config file the running proxy was started with (`litellm --config FILE`), if any."""
    try:
        from litellm.proxy import proxy_server  # type: ignore[import-not-found,unused-ignore]
    except Exception:  # noqa: BLE001  # not running inside the proxy
        return None
    path = getattr(proxy_server, "user_config_file_path", None) or os.environ.get("CONFIG_FILE_PATH")
    return Path(path) if path else None


def _traceparent(payload: dict[str, Any]) -> str | None:
    """The W3C traceparent the caller sent, if any (no other header is read)."""
    metadata = payload.get("metadata")
    requester = metadata.get("requester_metadata") if isinstance(metadata, dict) else None
    headers = requester.get("headers") if isinstance(requester, dict) else None
    value = headers.get("traceparent") if isinstance(headers, dict) else None
    return value if isinstance(value, str) else None


def _role_of(role: Any) -> Any:
    """LiteLLM's user role (an enum, or its value)."""
    return getattr(role, "value", role)


def _user_role(kwargs: dict[str, Any]) -> Any:
    params = kwargs.get("litellm_params")
    metadata = params.get("metadata") if isinstance(params, dict) else None
    auth = metadata.get("user_api_key_auth") if isinstance(metadata, dict) else None
    return _role_of(getattr(auth, "user_role", None))


class AiauditLogger(CustomLogger):  # type: ignore[misc,unused-ignore]
    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or Settings()
        ls = self.settings.litellm
        self._queue: queue.Queue[tuple[dict[str, Any], Any, str, str]] = queue.Queue(maxsize=ls.max_buffered_events)
        self._held_chars = 0  # the prompt and response text the queue holds (bounded by max_buffered_chars)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._content_keys: SubjectKeys | None = None  # made with the first content kept
        self._side: Any = None  # the producer of policy bundles and kept content (made when first needed)
        self._dropped: dict[str, int] = {}
        self._dropped_logged_at = 0.0
        if ls.metrics_port:
            metrics.serve(ls.metrics_port)

    # --- LiteLLM's hooks (on its event loop: nothing here waits) -------------------------------

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._take(kwargs)

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._take(kwargs)

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._take(kwargs)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._take(kwargs)

    async def async_post_call_failure_hook(self, request_data: dict[str, Any], original_exception: Exception,
                                           user_api_key_dict: Any, traceback_str: str | None = None) -> None:
        """A request refused before LiteLLM logged it (no logging payload yet): recorded from the
        request and the exception. One LiteLLM also logs is recorded once (its call id)."""
        payload = request_data.get("standard_logging_object")
        if isinstance(payload, dict):
            return  # LiteLLM logs it as a failure too: that event is the one
        metadata = request_data.get("metadata") if isinstance(request_data.get("metadata"), dict) else {}
        self._put({
            "litellm_call_id": request_data.get("litellm_call_id"), "status": "failure",
            "metadata": metadata, "messages": request_data.get("messages"),
            "model": request_data.get("model"), "model_group": request_data.get("model"),
            "call_type": request_data.get("call_type"), "startTime": time.time(), "endTime": time.time(),
            "error_information": {"error_class": type(original_exception).__name__,
                                  "error_message": str(original_exception)[:1024],
                                  "error_code": str(getattr(original_exception, "status_code", "") or "")},
        }, _role_of(getattr(user_api_key_dict, "user_role", None)))

    def _take(self, kwargs: dict[str, Any]) -> None:
        payload = kwargs.get("standard_logging_object")
        if not isinstance(payload, dict):
            self._drop("no_payload")
            return
        self._put(payload, _user_role(kwargs))

    def _put(self, payload: dict[str, Any], role: Any) -> None:
        self._start()
        kept, prompt, response = slim(payload)
        size = len(prompt) + len(response)
        with self._lock:
            if self._held_chars + size > self.settings.litellm.max_buffered_chars:
                full = True
            else:
                full, self._held_chars = False, self._held_chars + size
        if full:
            self._drop("buffer_full")
            return
        try:
            self._queue.put_nowait((kept, role, prompt, response))
        except queue.Full:
            with self._lock:
                self._held_chars -= size
            self._drop("buffer_full")

    # --- the sender thread ---------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="aiaudit-litellm", daemon=True)
                self._thread.start()

    def _drop(self, reason: str, n: int = 1) -> None:
        metrics.LITELLM_DROPPED.labels(reason).inc(n)
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n
            now = time.monotonic()
            if now - self._dropped_logged_at < DROP_LOG_EVERY_S:
                return
            counts, self._dropped, self._dropped_logged_at = self._dropped, {}, now
        log.error("aiaudit: LiteLLM requests NOT recorded as evidence: %s",
                  ", ".join(f"{n} ({reason})" for reason, n in sorted(counts.items())))

    def _run(self) -> None:
        from aiaudit.pipeline.emit.producer import Delivery, Emitter
        from aiaudit.pipeline.errors import AiAuditError

        def delivered(d: Delivery) -> None:
            if d.error is not None:
                self._drop("not_acknowledged")

        try:
            emitter = Emitter(self.settings, on_delivery=delivered)
        except AiAuditError as exc:
            log.error("aiaudit: the LiteLLM callback cannot emit evidence: %s", exc)
            while True:  # every request is counted as dropped, never held up
                _, _, prompt, response = self._queue.get()
                with self._lock:
                    self._held_chars -= len(prompt) + len(response)
                self._drop("no_emitter")
                self._queue.task_done()
        classifier = Classifier()
        seen: OrderedDict[str, None] = OrderedDict()
        policy, config_mtime, checked = self._policy(None), self._config_mtime(), time.monotonic()
        published: set[str] = set()
        gateway_id = f"litellm:{socket.gethostname()}"
        last_publish = float("-inf")
        while True:
            try:
                payload, role, prompt, response = self._queue.get(timeout=1.0)
            except queue.Empty:
                emitter.poll(0)
                continue
            with self._lock:
                self._held_chars -= len(prompt) + len(response)
            try:
                if time.monotonic() - checked > CONFIG_CHECK_EVERY_S:
                    checked = time.monotonic()
                    if (mtime := self._config_mtime()) != config_mtime:
                        policy, config_mtime = self._policy(policy), mtime
                if policy.version not in published and time.monotonic() - last_publish > PUBLISH_RETRY_S:
                    last_publish = time.monotonic()
                    if self._publish(policy, gateway_id):
                        published.add(policy.version)
                call_id = str(payload.get("litellm_call_id") or payload.get("id") or "")
                if call_id and call_id in seen:
                    continue
                if call_id:
                    seen[call_id] = None
                    if len(seen) > SEEN:
                        seen.popitem(last=False)
                try:
                    event = event_of(payload, policy=policy, classifier=classifier,
                                     retention_scope=self.settings.litellm.retention_scope, user_role=role,
                                     traceparent=_traceparent(payload), texts=(prompt, response))
                    kept = self._commit(event, prompt, response if payload.get("status") == "success" else None)
                    emitter.emit(event, timeout_s=3600.0)  # waits while the broker is away; the queue holds the rest
                    if kept is not None:
                        self._keep(event, kept)
                except Exception as exc:  # noqa: BLE001  # one bad payload never stops the sender
                    log.error("aiaudit: a LiteLLM request could not be made an event (%s): %s", type(exc).__name__,
                              str(exc)[:300])
                    self._drop("invalid")
                    continue
                metrics.LITELLM_EVENTS.labels(event["decision"]).inc()
            finally:
                self._queue.task_done()

    def _commit(self, event: dict[str, Any], prompt: str, response: str | None) -> dict[str, Any] | None:
        """The event's commitments to the prompt and response, as the settings' `content` rule says
        (HMAC-SHA256 under a key of this record's own); what is to be kept of them, or None."""
        rule = self.settings.litellm.content
        commitments = commit(rule, prompt, response, os.urandom(32))
        event["prompt_commitment"], event["response_commitment"] = commitments.prompt, commitments.response
        return kept_content(rule, commitments, prompt, response)

    def _keep(self, event: dict[str, Any], kept: dict[str, Any]) -> None:
        """The commitment key (and, under `full`, the text) sealed under the person's key and the
        record's, to the content topic: `aiaudit content show` opens it, `aiaudit erase` destroys
        the keys. Not kept is counted (reason content) and logged, never the request held up."""
        ls = self.settings.litellm
        subjects = (str(event["actor"]["id"]),)
        expires = content_expiry(event["occurred_at"], ls.retention_days)
        try:
            if self._content_keys is None:
                self._content_keys = SubjectKeys(self.settings.content_keys_dir())
            sealed, key_ids = self._content_keys.seal(event["event_id"], subjects, expires, kept)
            message = content_message(event_id=event["event_id"], retention_scope=ls.retention_scope,
                                      expires_at=expires, subjects=subjects, key_ids=key_ids, sealed=sealed)
            side = self._side_producer()
            side.produce(self.settings.kafka.content_topic, orjson.dumps(message), key=str(event["event_id"]).encode())
            side.poll(0)
        except (BufferError, OSError, ValueError) as exc:
            log.error("aiaudit: the content of LiteLLM request %s was not kept: %s", event["event_id"], exc)
            self._drop("content")

    def _config_file(self) -> Path | None:
        return self.settings.litellm.config_file or _proxy_config_file()

    def _config_mtime(self) -> float | None:
        path = self._config_file()
        try:
            return path.stat().st_mtime if path is not None else None
        except OSError:
            return None

    def _policy(self, current: Policy | None) -> Policy:
        """The policy of the config in force: the proxy's file, read, stripped and hashed."""
        path = self._config_file()
        config: Any = {}
        if path is None:
            log.warning("aiaudit: no LiteLLM config file found (set AIAUDIT_LITELLM__CONFIG_FILE): events name "
                        "an empty config as their policy")
        else:
            try:
                config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                if current is not None:
                    log.error("aiaudit: %s does not read (%s): events keep naming %s", path, exc, current.version)
                    return current
                log.error("aiaudit: %s does not read (%s): events name an empty config", path, exc)
        policy = config_policy(config if isinstance(config, dict) else {}, self.settings.litellm.policy_id,
                               _litellm_version())
        if current is None or policy.version != current.version:
            log.info("aiaudit: LiteLLM requests recorded under policy %s version %s", policy.policy_id, policy.version)
        return policy

    def _publish(self, policy: Policy, gateway_id: str) -> bool:
        """The bundle on the policies topic (as the gateway publishes its own), so `aiaudit gateway
        policy --version V` shows it; False (tried again with the next event) when the broker does
        not take it."""
        message = {"policy_id": policy.policy_id, "policy_version": policy.version, "declared_version": DECLARED,
                   "canonical_json": policy.canonical_json.decode(), "source_yaml": policy.source_yaml,
                   "loaded_at": datetime.now(timezone.utc).isoformat(), "gateway_id": gateway_id}
        side = self._side_producer()
        side.produce(self.settings.kafka.policies_topic, key=policy.version.encode(), value=orjson.dumps(message))
        if side.flush(10):
            log.warning("aiaudit: the broker has not taken policy bundle %s yet; trying again", policy.version)
            return False
        return True

    def _side_producer(self) -> Any:
        if self._side is None:
            from confluent_kafka import Producer

            from aiaudit.pipeline.kafka import config as kafka_config

            self._side = Producer(kafka_config.producer(self.settings))
        return self._side
