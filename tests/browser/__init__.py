"""Browser tests: Chromium via Playwright against real server processes."""
