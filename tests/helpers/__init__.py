"""Helpers shared by the test tiers (imported as `helpers.NAME`; tests/ is on sys.path)."""

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]      # the checkout's root
