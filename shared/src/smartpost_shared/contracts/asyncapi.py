"""The combined AsyncAPI 3.0 document for every SmartPost topic, generated from the topic registry and contracts.

FastStream can describe each service's own subscribers; integrators need the whole picture (who produces what on
which topic, with which key and schema), so this document is built from the registry that the code itself uses.
"""

from __future__ import annotations

from typing import Any

from smartpost_shared.contracts.envelope import registered_payloads
from smartpost_shared.contracts.schemas import envelope_schema, payload_schema
from smartpost_shared.topics import ALL_TOPICS


def _message_id(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}"


def asyncapi_document() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": envelope_schema()}
    for event_type, version in sorted(registered_payloads()):
        message_id = _message_id(event_type, version)
        schema = payload_schema(event_type, version)
        schemas[message_id] = schema
        messages[message_id] = {
            "name": event_type,
            "title": f"{event_type} (schema_version {version})",
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {"event_type": {"const": event_type}, "schema_version": {"const": str(version)}},
            },
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"type": "object", "properties": {"payload": {"$ref": f"#/components/schemas/{message_id}"}}},
                ]
            },
        }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        channel_id = topic.name.replace(".", "_")
        refs = {
            _message_id(et, v): {"$ref": f"#/components/messages/{_message_id(et, v)}"}
            for et, v in sorted(registered_payloads())
            if et in topic.event_types
        }
        channels[channel_id] = {
            "address": topic.name,
            "description": (
                f"Key: {topic.key}. Partitions: {topic.partitions}. Producer: {topic.producer}. "
                f"Consumers: {', '.join(topic.consumers) or 'none yet'}. Dead-letter topic: {topic.dead_letter} "
                "(headers dlq_reason, dlq_source_topic, dlq_source_partition, dlq_source_offset)."
            ),
            "messages": refs,
            "bindings": {"kafka": {"topic": topic.name, "partitions": topic.partitions, "bindingVersion": "0.5.0"}},
        }
        operations[f"{topic.producer}_sends_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"{topic.producer} publishes {', '.join(topic.event_types)}",
        }
        for consumer in topic.consumers:
            operations[f"{consumer}_receives_{channel_id}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"{consumer} consumes {topic.name} (consumer group smartpost-{consumer})",
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SmartPost events",
            "version": "1.0.0",
            "description": (
                "Every message is a JSON envelope (event_id, event_type, schema_version, occurred_at, account_id, "
                "correlation_id, causation_id, producer, payload). Consumers ignore unknown fields; producers are "
                "strict. Breaking changes get a new schema_version and the old one stays supported."
            ),
        },
        "servers": {"kafka": {"host": "kafka:9092", "protocol": "kafka", "description": "Apache Kafka (KRaft)"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
