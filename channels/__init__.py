"""Delivery channels: one module per provider, registered by name (`email.smtp`...)."""
