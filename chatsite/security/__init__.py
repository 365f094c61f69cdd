"""Defences against hostile clients over HTTP (issue 12): sign-in and sign-up pacing and
throttling, and username look-alikes. The websocket side lives in consumers/."""
