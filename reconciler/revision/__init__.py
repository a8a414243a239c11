"""Which revision of the desired state runs: pure decisions over the sources' artifacts."""
