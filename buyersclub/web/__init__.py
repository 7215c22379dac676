"""The people-facing shell: the start page and the signed-in dashboard."""
