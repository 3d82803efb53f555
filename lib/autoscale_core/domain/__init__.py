"""The domain: pure rules, no I/O, no vendor."""
