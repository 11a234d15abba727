"""The keys of `[crm.salesforce]` in config.toml."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from connectors.settings import Section, env_name


class SalesforceSettings(Section):
    """Where the Salesforce org is and how to log in (a session id, or username and password)."""

    instance_url: str
    session_id_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    security_token_env: str | None = None
    domain: str | None = None
    case_external_id_field: str | None = None
    poll_seconds: float = Field(default=30, gt=0)
    ca_file: str | None = None
    api_version: str = "59.0"
    timeout: float = Field(default=30, gt=0)
    _v = field_validator("session_id_env", "username_env", "password_env", "security_token_env")(env_name)

    @model_validator(mode="after")
    def _login(self) -> SalesforceSettings:
        if not self.session_id_env and not (self.username_env and self.password_env):
            raise ValueError("set session_id_env, or username_env and password_env (and security_token_env)")
        return self
