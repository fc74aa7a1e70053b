"""Workstation-side tools: torch architectures, checkpoint loading and format converters."""
