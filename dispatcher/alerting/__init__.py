"""The alert path before the engine: request contract, intake, templates, rendering."""
