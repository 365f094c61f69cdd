"""Deployment helpers: management commands Heroku's app.json and operators run."""
