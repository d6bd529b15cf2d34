"""Pure rules of the assignment service (no I/O)."""
