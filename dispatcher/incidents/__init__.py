"""Incidents: the daily crime log, timely-warning decisions and the Annual Security Report's
statistics (34 CFR 668.46(f), (e) and (c))."""
