"""Hearing back: answers from every channel, answer links, opt-outs and escalation."""
