"""Adapters of the portal publisher: its relational tables and repository."""
