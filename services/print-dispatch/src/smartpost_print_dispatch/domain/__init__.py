"""Pure print-dispatch rules (no I/O): recipient selection, envelope planning, postage, DIN 5008 zones, life cycle."""
