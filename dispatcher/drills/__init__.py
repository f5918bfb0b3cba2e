"""Drills: the schedule, the scheduler that fires them once, and `clarion drill`."""
