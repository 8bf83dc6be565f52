"""The OTLP receiver in this process, a sender's token, and the example application
(examples/otlp/app.py: the official OpenTelemetry SDK and OpenAI instrumentation) as a child."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiaudit.pipeline.ops.vendor_standin import Served
from aiaudit.pipeline.otlp.receiver import Receiver
from aiaudit.pipeline.otlp.senders import Senders, senders_file
from aiaudit.pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "otlp" / "app.py"


def otlp_settings(settings: Settings, tmp_path: Path, **otlp: object) -> Settings:
    return settings.updated(otlp={"state_dir": tmp_path / "otlp", **otlp})


def sender(settings: Settings, name: str) -> str:
    return Senders(senders_file(settings)).add(name)


def serve(settings: Settings) -> tuple[Receiver, Served]:
    receiver = Receiver(settings)
    return receiver, Served(receiver.app)


def run_app(receiver_url: str, token: str, vendor_url: str, *args: str, content: str = "EVENT_ONLY"
            ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url,
                "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{token}",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": content,
                "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                "OPENAI_BASE_URL": vendor_url + "/v1", "OPENAI_API_KEY": "sk-vendor-secret-77ab"})
    run = subprocess.run([sys.executable, str(APP), *args], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return run
