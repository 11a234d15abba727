"""The store: Tortoise models (models.py), connection and migrations (db.py), queries (repo.py)."""
