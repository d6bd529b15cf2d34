"""Adapters: Kafka outbox relay over the event store's notification log, SQL read model, object storage."""
