"""SmartPost splitter: one serial-letter PDF in, one stored part per letter out (with evidence for assignment)."""
