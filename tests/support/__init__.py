"""Helpers for the test suite: real services, real processes."""
