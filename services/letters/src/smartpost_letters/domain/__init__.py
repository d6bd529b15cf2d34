"""Pure domain rules of the serial letter (no I/O): aggregates, value objects and domain errors."""
