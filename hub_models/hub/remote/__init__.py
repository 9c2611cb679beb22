"""Helpers of `hub_models.hub.remote_code`: the source bundler (`bundle`)."""
