"""The operator console: people sign in and send, follow and clear alerts from a browser."""
