"""A local single-node Apache Kafka broker (KRaft) run from the Apache jars on Maven Central.

`up()` is idempotent: it fetches the jars with Maven (infra/kafka/pom.xml) when they are
missing, formats the data folder once, starts the broker on 127.0.0.1, waits until it
answers, and creates the topics. Data, logs and the pid file live in the state folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from aiaudit.infra.topics import ensure_topics
from aiaudit.pipeline.errors import InfraError
from aiaudit.pipeline.settings import Settings

HERE = Path(__file__).resolve().parent
LIB_DIR = HERE / "lib"
MAIN_JAR = "kafka_2.13-*.jar"

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data_dir}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=3000
auto.create.topics.enable=false
message.max.bytes=2097152
log.flush.interval.messages=9223372036854775807
"""


def process_alive(pid: int) -> bool:
    """True while `pid` runs; reaps it when it is our exited child (no zombie counts)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _say(msg: str) -> None:
    print(f"[infra] {msg}", file=sys.stderr, flush=True)


@dataclass
class LocalKafka:
    settings: Settings
    # Further server.properties lines (KEY=VALUE), after the defaults above: benches try settings with it.
    extra_properties: tuple[str, ...] = ()
    # Further JVM options for the broker, before the class name: benches try them with it.
    extra_jvm_options: tuple[str, ...] = ()

    @property
    def home(self) -> Path:
        return self.settings.local.state_dir / "kafka"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.local.kafka_port}"

    # --- jars ------------------------------------------------------------------------

    def ensure_jars(self) -> None:
        if list(LIB_DIR.glob(MAIN_JAR)):
            return
        if shutil.which("java") is None:
            raise InfraError("java is not on PATH: install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("mvn is not on PATH: install Maven (e.g. apt-get install maven) to fetch the Kafka jars")
        _say("fetching the Apache Kafka jars from Maven Central (once) ...")
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(HERE / "pom.xml"), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={LIB_DIR}"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 or not list(LIB_DIR.glob(MAIN_JAR)):
            raise InfraError(f"Maven could not fetch the Kafka jars:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")

    def _java(self, *args: str, **kw: object) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise InfraError("java is not on PATH: install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)")
        return [java, f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}", "-cp", str(LIB_DIR / "*"), *args]

    # --- lifecycle -------------------------------------------------------------------

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def _port_taken(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.settings.local.kafka_port), timeout=1.0).close()
        except OSError:
            return False
        return True

    def answers(self, timeout_s: float = 2.0) -> bool:
        try:  # a plain TCP probe first, so a starting broker does not flood the log with refusals
            socket.create_connection(("127.0.0.1", self.settings.local.kafka_port), timeout=timeout_s).close()
        except OSError:
            return False
        try:
            AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=timeout_s)
        except Exception:
            return False
        return True

    def up(self, *, wait_s: float = 90.0) -> None:
        """Start the broker unless it runs, wait until it answers, create the topics."""
        if self.pid() is None:
            if self._port_taken():
                raise InfraError(f"127.0.0.1:{self.settings.local.kafka_port} is already taken by a process this state "
                                 f"folder ({self.home}) did not start; stop it or set AIAUDIT_LOCAL__KAFKA_PORT")
            self.ensure_jars()
            self.home.mkdir(parents=True, exist_ok=True)
            data_dir = (self.home / "data").resolve()
            props = self.home / "server.properties"
            props.write_text(SERVER_PROPERTIES.format(
                port=self.settings.local.kafka_port, controller_port=self.settings.local.controller_port, data_dir=data_dir)
                + "".join(f"{line}\n" for line in self.extra_properties))
            if not (data_dir / "meta.properties").exists():
                fmt = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", str(uuid.uuid4()), "-c", str(props)),
                                      capture_output=True, text=True)
                if fmt.returncode != 0:
                    raise InfraError(f"formatting the Kafka data folder failed:\n{fmt.stdout[-1500:]}{fmt.stderr[-1500:]}")
            _say(f"starting Apache Kafka on {self.bootstrap} (data in {data_dir})")
            with open(self.log_file, "ab") as log:
                proc = subprocess.Popen(
                    self._java(f"-Xmx{self.settings.local.kafka_heap}", f"-Xms{self.settings.local.kafka_heap}",
                               "-XX:+UseG1GC", *self.extra_jvm_options, "kafka.Kafka", str(props)),
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )
            self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + wait_s
        while not self.answers():
            if self.pid() is None:
                raise InfraError(f"the Kafka broker exited during start-up; see {self.log_file}")
            if time.monotonic() > deadline:
                raise InfraError(f"the Kafka broker did not answer on {self.bootstrap} within {wait_s}s; see {self.log_file}")
            time.sleep(0.5)
        created = ensure_topics(self.settings)
        if created:
            _say(f"created topics: {', '.join(created)}")

    def down(self, *, wait_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL). Returns False when none was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"stopped (state in {self.home})"
        return f"running, pid {pid}, {self.bootstrap}, {'answering' if self.answers() else 'not answering yet'}"
