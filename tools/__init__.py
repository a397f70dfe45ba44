"""Tooling for tests and benchmarks (not part of the app): run the app in the background, drive Chromium."""
