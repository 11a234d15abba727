"""The webhook connector."""
