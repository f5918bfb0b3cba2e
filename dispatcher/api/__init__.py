"""The HTTP API: one route module per concern, listed and mounted in `app.py`.

The list is not kept here: importing any module of this package runs this file first, and
`public/routes.py` imports `edge.py` while `api/cap.py` imports `public/routes.py`, so
route modules imported from here would make `import dispatcher.public.routes` fail.
"""
