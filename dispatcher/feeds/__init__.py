"""Upstream alert feeds (NWS, county CAP): polling, formats, relay rules and the relay."""
