"""Conformance suite for codec plugins."""
