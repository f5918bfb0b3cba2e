"""The HTTP API: one route module per concern, assembled in `app.py`."""

# The route modules, mounted in this order; each has `routes` and may describe its paths
# for /openapi.json in `OPENAPI_PATHS`.
ROUTE_MODULES = (
    "dispatcher.api.ops",
    "dispatcher.api.alerts",
    "dispatcher.api.lint",
    "dispatcher.api.callbacks",
    "dispatcher.api.voice",
    "dispatcher.api.answers",
    "dispatcher.api.cap",
    "dispatcher.api.devices",
    "dispatcher.api.approvals",
    "dispatcher.api.drills",
    "dispatcher.api.incidents",
    "dispatcher.api.feeds",
    "dispatcher.public.routes",
    "dispatcher.public.answer",
)
