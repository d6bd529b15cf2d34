"""Print providers behind one interface (:class:`PrintProvider`)."""
