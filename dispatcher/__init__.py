"""Clarion's dispatcher: intake, policy, rendering, outbox, engine, API and CLI."""
