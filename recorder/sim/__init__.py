"""Simulated cameras for the demo and the tests."""
