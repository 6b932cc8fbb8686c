"""Helpers shared by the test tiers (imported as `helpers.NAME`; tests/ is on sys.path)."""
