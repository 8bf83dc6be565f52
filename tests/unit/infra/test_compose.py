"""docker-compose.yml, checked without a Docker engine: against the Compose specification's JSON
schema, and its settings, users and paths against what the images and pipeline/settings.py expect."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.signer.server import TOKEN_ENV

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SIGNER = "checkpoint-signer"  # an aiaudit image too, run as an OS user of its own
AIAUDIT = [name for name, s in SERVICES.items() if s.get("build") == "." and name != SIGNER]


def test_the_file_is_valid_under_the_compose_specification():
    validator = jsonschema.Draft201909Validator(json.loads((ROOT / "tests" / "fixtures" / "compose_spec.json").read_text()))
    validator.validate(COMPOSE)  # raises, naming the path, when it is not
    broken = {**COMPOSE, "services": {**SERVICES, "kafka": {**SERVICES["kafka"], "depends_on": {"x": {"when": 1}}}}}
    assert not validator.is_valid(broken)  # the schema does bite


def test_every_aiaudit_setting_it_sets_is_one_the_settings_tree_has():
    fields = {f"AIAUDIT_{section.upper()}__{name.upper()}" for section, model in Settings.model_fields.items()
              for name in model.annotation.model_fields}
    names = {k for s in SERVICES.values() for k in (s.get("environment") or {}) if k.startswith("AIAUDIT_")}
    assert names and names <= fields | {TOKEN_ENV}, sorted(names - fields)


def test_kafka_keeps_its_data_on_the_volume_and_everything_waits_for_what_it_needs():
    kafka = SERVICES["kafka"]
    data = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert any(v.split(":")[1] == data for v in kafka["volumes"])  # not the image's default under /tmp
    for name, service in SERVICES.items():
        assert "healthcheck" in service or name not in ("kafka", "clickhouse", "gateway"), name
        for needed, how in (service.get("depends_on") or {}).items():
            assert isinstance(how, dict) and how["condition"] in ("service_healthy", "service_completed_successfully")
            if how["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[needed], needed


def test_workers_run_as_the_keys_owner_and_read_keys_read_only():
    for name in AIAUDIT:
        assert re.fullmatch(r"\$\{AIAUDIT_UID:\?[^}]*\}:\$\{AIAUDIT_GID:\?[^}]*\}", SERVICES[name]["user"]), name
        for volume in SERVICES[name].get("volumes", []):
            if volume.split(":")[1] == "/keys":
                assert volume.endswith(":ro"), volume
    assert any(v.startswith("./keys:/keys") for v in SERVICES["chain-worker"]["volumes"])


def test_the_console_holds_its_own_key_the_operator_key_and_the_trust_file_only():
    """The console (profile console): on loopback, its key, trust file and accounts read-only from
    ./console, the operator key read-only, never the record keys or the signer's folder; the address
    people use is what Origin is checked against; it waits for the store and the topics."""
    console = SERVICES["console"]
    assert console["profiles"] == ["console"] and console["ports"] == ["127.0.0.1:8700:8700"]
    env = console["environment"]
    assert env["AIAUDIT_CONSOLE__PUBLIC_URL"].endswith("http://127.0.0.1:8700}")
    mounts = {v.split(":")[1]: v for v in console["volumes"]}
    for setting in ("AIAUDIT_CONSOLE__KEY_FILE", "AIAUDIT_CONSOLE__TRUST_FILE", "AIAUDIT_CONSOLE__ACCOUNTS_FILE",
                    "AIAUDIT_SIGNING__OPERATOR_KEY_FILE"):
        folder = next(m for m in mounts if env[setting].startswith(m + "/") or env[setting] == m)
        assert mounts[folder].endswith(":ro"), (setting, mounts[folder])
    assert not any(v.startswith(("./keys", "./signer", "./emitter-keys")) for v in console["volumes"])
    assert "/data" in mounts and not mounts["/data"].startswith("./")  # its reports on a volume of its own
    assert set(console["depends_on"]) == {"topics", "clickhouse"}
    command = console["command"]
    assert command[:2] == ["console", "serve"] and command[command.index("--host") + 1] == "0.0.0.0"


def test_every_evidence_kind_is_chained_in_the_stack():
    """Findings, incidents, status changes and access records are chained by the evidence worker, with
    checkpoints from the same signer as the requests' chain (the sink stores only chained evidence)."""
    evidence, chain = SERVICES["evidence-worker"], SERVICES["chain-worker"]
    assert evidence["command"][:2] == ["worker", "evidence"]
    for key in ("AIAUDIT_CHAIN__SIGNER_URL", "AIAUDIT_SIGNING__CHECKPOINT_KEY_FILE", TOKEN_ENV):
        assert evidence["environment"][key] == chain["environment"][key], key
    assert evidence["volumes"] == chain["volumes"]


def test_the_checkpoint_key_is_the_signers_alone():
    """The signer runs as another user than the workers, holds its folder; the chain worker gets the
    signer's URL and of its folder only the public key, read-only."""
    signer = SERVICES[SIGNER]
    assert signer["user"] != SERVICES["chain-worker"]["user"] and "AIAUDIT_UID" not in signer["user"]
    assert signer["volumes"] == ["./signer:/signer"]
    chain = SERVICES["chain-worker"]
    assert chain["environment"]["AIAUDIT_CHAIN__SIGNER_URL"] == "http://checkpoint-signer:8742"
    from_signer = [v for v in chain["volumes"] if v.startswith("./signer")]
    assert from_signer == ["./signer/checkpoint.pub:/run/aiaudit/checkpoint.pub:ro"]
    for name in AIAUDIT:
        assert not any(v.startswith("./signer:") for v in SERVICES[name].get("volumes", [])), name


def test_replicas_never_share_a_fixed_host_port_and_mounted_files_exist():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            host = port.split(":")[-2]
            if service.get("deploy", {}).get("replicas", 1) > 1:
                first, _, last = host.partition("-")
                assert last and int(last) - int(first) + 1 >= service["deploy"]["replicas"], (name, port)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            # ./keys, ./emitter-keys (the gateway's own key), ./signer, ./models, ./console and ./operator the
            # operator creates (the header says how)
            if source.startswith("./") and source.split("/")[1] not in ("keys", "emitter-keys", "models", "signer",
                                                                        "console", "operator"):
                assert (ROOT / source).exists(), (name, source)


def test_the_state_folder_is_writable_in_the_image():
    dockerfile = (ROOT / "Dockerfile").read_text()
    state = SERVICES["sink-worker"]["environment"]["AIAUDIT_LOCAL__STATE_DIR"]
    assert f"mkdir -p {state}" in dockerfile and f"chmod 1777 {state}" in dockerfile
    assert "pip install --no-cache-dir '.[server]'" in dockerfile


def test_every_aiaudit_process_is_scraped_and_the_dashboard_reads_what_it_exports():
    """Each worker and the gateway serve /metrics on the port Prometheus scrapes (on the compose network
    only: no host port); Prometheus finds each of them by name; every panel of the dashboard reads a
    metric pipeline/metrics.py exports, from the provisioned data source."""
    from prometheus_client.metrics import MetricWrapperBase

    from aiaudit.pipeline import metrics

    config = yaml.safe_load((ROOT / "infra" / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    assert config["rule_files"] == ["rules.yml"]
    for name in ("chain-worker", "evidence-worker", "score-worker", "sink-worker", "deliver-worker", "gateway", "console"):
        command = SERVICES[name]["command"]
        assert command[command.index("--metrics-port") + 1] == str(sd["port"]) and name in sd["names"], name
        assert not any(p.split(":")[-1] == str(sd["port"]) for p in SERVICES[name].get("ports", [])), name
    assert SERVICES["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert all(p.startswith("127.0.0.1:") for s in ("prometheus", "grafana") for p in SERVICES[s]["ports"])

    exported = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            exported |= {value._name, f"{value._name}_total", f"{value._name}_bucket"}
    source = yaml.safe_load((ROOT / "infra" / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
                            .read_text())["datasources"][0]
    dashboard = json.loads((ROOT / "infra" / "grafana" / "dashboards" / "aiaudit.json").read_text())
    assert dashboard["uid"] == "aiaudit" and len(dashboard["panels"]) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            read = set(re.findall(r"aiaudit_[a-z_]+", target["expr"]))
            assert read and read <= exported, (panel["title"], read - exported)
