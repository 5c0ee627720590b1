"""The web dashboard: an aiohttp sub-application mounted under /dashboard."""
