"""Test helpers shared by every service's tests (import as a pytest plugin: ``smartpost_shared.testing.fixtures``)."""
