"""Adapters: the service's database tables and master-data queries."""
