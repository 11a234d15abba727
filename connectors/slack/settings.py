"""The keys of a `kind = "slack"` channel in config.toml."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from connectors.settings import Section, channel_name, env_name


class SlackChannel(Section):
    """One Slack app: HTTP events (signed with the signing secret), or Socket Mode with an app token."""

    name: str
    kind: Literal["slack"]
    bot_token_env: str
    signing_secret_env: str
    app_token_env: str | None = None
    api_url: str | None = None
    _v = field_validator("bot_token_env", "signing_secret_env", "app_token_env")(env_name)
    _n = field_validator("name")(channel_name)

    def required_env(self) -> list[str]:
        """The environment variables the channel cannot work without."""
        needed = [self.bot_token_env, self.signing_secret_env]
        if self.app_token_env:
            needed.append(self.app_token_env)
        return needed
