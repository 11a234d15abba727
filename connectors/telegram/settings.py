"""The keys of a `kind = "telegram"` channel in config.toml."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from connectors.settings import Section, channel_name, env_name


class TelegramChannel(Section):
    """One Telegram bot: webhook mode when `webhook_secret_env` is set, long polling otherwise."""

    name: str
    kind: Literal["telegram"]
    token_env: str
    webhook_secret_env: str | None = None
    public_url: str | None = None
    api_url: str | None = None
    _v = field_validator("token_env", "webhook_secret_env")(env_name)
    _n = field_validator("name")(channel_name)

    def required_env(self) -> list[str]:
        """The environment variables the channel cannot work without."""
        needed = [self.token_env]
        if self.webhook_secret_env:
            needed.append(self.webhook_secret_env)
        return needed
