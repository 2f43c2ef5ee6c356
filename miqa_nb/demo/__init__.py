"""The demo project: files built from real images that packages ship, and its import."""
