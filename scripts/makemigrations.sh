#!/usr/bin/env bash
# Generate a migration from model changes: scripts/makemigrations.sh NAME
# It diffs bot/store/models.py against the migrations already in migrations/ (a scratch SQLite is used).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
INBOX_DATABASE_URL="sqlite://$scratch/dev.sqlite3" .venv/bin/tortoise -c bot.store.db.TORTOISE_ORM makemigrations -n "${1:?name the migration}"
