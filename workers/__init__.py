"""The worker role: one supervisor per host and its child processes (``redpool worker``)."""
