"""What every connector's settings share: strict frozen sections and the checks of names.

Each connector keeps its own config keys in its `settings.py`; `bot/config.py` assembles them into
the whole config.toml. Nothing here reads the environment: secrets stay names until `Settings.secret`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Section(BaseModel):
    """One table of config.toml: frozen, unknown keys refused, no type coercion."""

    # strict: `advanced_inbox = "yes"` is reported, not read as true
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def env_name(value: str | None) -> str | None:
    """A field validator: the value names an environment variable."""
    if value is not None and not ENV_NAME.match(value):
        # Never echo the value: it may be the secret itself, written in by mistake.
        raise ValueError("must be the name of an environment variable (letters, digits, _), not the secret itself")
    return value


def channel_name(value: str) -> str:
    """A field validator: a channel name, which is part of URL paths."""
    if not CHANNEL_NAME.match(value):
        raise ValueError(f"{value!r} must be letters, digits, '-' or '_' (it is part of the URL path)")
    return value


__all__ = ["CHANNEL_NAME", "ENV_NAME", "Section", "channel_name", "env_name"]
