"""Create the stream's topics and each role's ACLs on the broker, idempotently (run by `make up`).

Environment: TAP_KAFKA_BOOTSTRAP, TAP_KAFKA_ADMIN_USER, TAP_KAFKA_ADMIN_PASSWORD, TAP_KAFKA_PRINCIPALS (JSON:
role -> principal name).
"""

from __future__ import annotations

import json
import os
import sys

from taxi_anomaly.streaming.settings import KafkaSettings
from taxi_anomaly.streaming.topics import GRANTS, GROUP_PREFIX, TOPICS, Topic


def admin_client(settings: KafkaSettings):
    from confluent_kafka.admin import AdminClient

    return AdminClient(settings.client_config())


def ensure_topics(admin, topics: tuple[Topic, ...] = TOPICS, timeout: float = 30.0) -> list[str]:
    """Create missing topics; check the partitions of existing ones and set their retention. Returns created."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

    existing = admin.list_topics(timeout=timeout).topics
    created = []
    missing = [t for t in topics if t.name not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(t.name, t.partitions, 1, config=t.configs) for t in missing], request_timeout=timeout
        )
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
    for topic in topics:
        if topic.name in existing:
            have = len(existing[topic.name].partitions)
            if have != topic.partitions:
                raise RuntimeError(f"topic {topic.name} has {have} partitions, the contract says {topic.partitions}")
            entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in topic.configs.items()]
            resource = ConfigResource("topic", topic.name, incremental_configs=entries)
            for future in admin.incremental_alter_configs([resource]).values():
                future.result()
    return created


def acl_bindings(principals: dict[str, str], grants: dict[str, dict[str, tuple[str, ...]]] = GRANTS) -> list:
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    bindings = []
    for role, topics in grants.items():
        principal = f"User:{principals[role]}"
        for topic, operations in topics.items():
            for op in (*operations, "DESCRIBE"):
                bindings.append(
                    AclBinding(
                        ResourceType.TOPIC,
                        topic,
                        ResourcePatternType.LITERAL,
                        principal,
                        "*",
                        AclOperation[op],
                        AclPermissionType.ALLOW,
                    )
                )
        if role in GROUP_PREFIX:
            bindings.append(
                AclBinding(
                    ResourceType.GROUP,
                    GROUP_PREFIX[role],
                    ResourcePatternType.PREFIXED,
                    principal,
                    "*",
                    AclOperation.READ,
                    AclPermissionType.ALLOW,
                )
            )
    return bindings


def ensure_acls(
    admin, principals: dict[str, str], grants: dict[str, dict[str, tuple[str, ...]]] = GRANTS, timeout: float = 30.0
) -> int:
    """Create every ACL of `grants` (the contract's by default; creating an existing binding is a no-op)."""
    bindings = acl_bindings(principals, grants)
    for future in admin.create_acls(bindings, request_timeout=timeout).values():
        future.result()
    return len(bindings)


def main() -> int:
    settings = KafkaSettings(
        os.environ["TAP_KAFKA_BOOTSTRAP"], os.environ["TAP_KAFKA_ADMIN_USER"], os.environ["TAP_KAFKA_ADMIN_PASSWORD"]
    )
    principals = json.loads(os.environ["TAP_KAFKA_PRINCIPALS"])
    admin = admin_client(settings)
    created = ensure_topics(admin)
    acls = ensure_acls(admin, principals)
    print(f"kafka provision: topics created {created or 'none'}, {acls} ACLs in place", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
