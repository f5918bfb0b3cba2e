"""CAP 1.2: the document format, campus zones as CAP areas, and `clarion cap`."""
