"""Delivering findings to where analysts work: formats (formats.py) and routing, suppression,
retries and delivery records (policy.py), both pure. Not built yet: the agent that consumes the
alerts topic and sends (issue 11, part 3)."""
