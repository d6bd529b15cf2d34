"""I/O of print dispatch: PDFs (pikepdf, pypdfium2, reportlab), database, object storage, print providers."""
