"""The telegram connector."""
