"""The audience: campus directory, segment expressions, zones, preferences and devices."""
