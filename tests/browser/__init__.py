"""Helpers for tests/test_browser.py: a minimal Chrome DevTools Protocol client and a PNG reader."""
