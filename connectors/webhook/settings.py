"""The keys of a `kind = "webhook"` channel in config.toml."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator

from connectors.settings import Section, channel_name, env_name


class WebhookChannel(Section):
    """A generic signed-webhook channel: `secret_env` names the HMAC secret; replies are POSTed to
    `reply_url` when set, else only stored (read back over the API)."""

    name: str
    kind: Literal["webhook"]
    secret_env: str
    reply_url: str | None = None

    @field_validator("reply_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    _v = field_validator("secret_env")(env_name)
    _n = field_validator("name")(channel_name)

    def required_env(self) -> list[str]:
        """The environment variables the channel cannot work without."""
        return [self.secret_env]
