"""Message policy: brief, actionable, and free of anything that identifies a victim."""
