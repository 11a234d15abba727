"""The slack connector."""
