"""Model files: the registry (registry.json), fetching, verifying and converting them."""
