-- Runs once, on the first start of the compose PostgreSQL (empty data volume), as POSTGRES_USER.
-- One database per service: each service owns its read models, idempotency rows and outbox; letters also keeps
-- its event store (eventsourcing) here. docker-compose.yml points SMARTPOST_<NAME>_DATABASE_URL at these names
-- (checked by tests/deploy/test_deploy_compose.py).
CREATE DATABASE smartpost_letters;
CREATE DATABASE smartpost_splitter;
CREATE DATABASE smartpost_assignment;
CREATE DATABASE smartpost_portal_publisher;
CREATE DATABASE smartpost_print_dispatch;
CREATE DATABASE smartpost_notifier;
CREATE DATABASE smartpost_gateway;
