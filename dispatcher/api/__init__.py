"""The HTTP API: one route module per concern, assembled in `app.py`."""
