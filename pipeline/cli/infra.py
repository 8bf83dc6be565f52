"""`aiaudit infra up|down|status|topics`: the local Kafka broker and the topics."""

from __future__ import annotations

import argparse

from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("infra", help="start, stop or show the local Kafka broker; create topics",
                       description="Manage the local single-node Apache Kafka (KRaft) broker run from the Maven Central "
                                   "jars. `topics` creates the topics with their configs on any configured cluster.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{up,down,status,topics}")
    actions.add_parser("up", help="start the local broker (a no-op when it runs)").set_defaults(func=up)
    actions.add_parser("down", help="stop the local broker").set_defaults(func=down)
    actions.add_parser("status", help="the broker's and the store's state").set_defaults(func=status)
    t = actions.add_parser("topics", help="create the topics with their configs (any configured cluster)")
    t.add_argument("--replication-factor", type=int, default=1, help="on a real cluster: 3")
    t.set_defaults(func=topics)


def up(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.infra.kafka.broker import LocalKafka

    kafka = LocalKafka(settings)
    kafka.up()
    print(f"Kafka: {kafka.status()}")
    return 0


def down(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.infra.kafka.broker import LocalKafka

    print("Kafka: stopped" if LocalKafka(settings).down() else "Kafka: was not running")
    return 0


def status(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.infra.kafka.broker import LocalKafka

    print(f"Kafka: {LocalKafka(settings).status()}")
    print(f"ClickHouse: {settings.clickhouse_dsn().split('@')[-1]}")
    return 0


def topics(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.infra.topics import ensure_topics

    created = ensure_topics(settings, replication_factor=args.replication_factor)
    print(f"created: {', '.join(created)}" if created else "all topics exist")
    return 0
