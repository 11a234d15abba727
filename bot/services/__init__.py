"""What a person or a platform can ask for: the one write path for every front-end and connector."""
