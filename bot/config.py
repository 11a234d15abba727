"""config.toml → frozen, typed settings. Secrets are read from the environment, never the file.

A bad config stops start-up with one message per problem, each naming the key
(`channels[1].secret_env: field required`). A channel whose secrets are missing from the
environment is reported and left off; the others still start.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

# Each connector's keys live beside its code; this module assembles the whole file.
from connectors.salesforce.settings import SalesforceSettings as SalesforceSettings
from connectors.settings import Section as _Section
from connectors.settings import env_name as _env_name
from connectors.slack.settings import SlackChannel
from connectors.telegram.settings import TelegramChannel
from connectors.webhook.settings import WebhookChannel as WebhookChannel


class ConfigError(Exception):
    """The config cannot be used; `problems` holds one message per bad key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    shutdown_timeout: float = Field(default=10.0, ge=0)


class DatabaseSettings(_Section):
    url: str = "sqlite://data/inbox.sqlite3"
    pool_min: int = Field(default=1, ge=1)
    pool_max: int = Field(default=10, ge=1)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql|asyncpg)://", v):
            raise ValueError("must start with sqlite:// or postgres://")
        return v

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite://")


class OrganizationSettings(_Section):
    plan: Literal["business", "enterprise"] = "enterprise"
    advanced_inbox: bool = False
    resolution_reasons: bool = True
    # Chat replies (and pages) when nothing says which language a person reads.
    language: Literal["en", "fr"] = "en"


class AdminSettings(_Section):
    slack: list[str] = Field(default_factory=list)
    telegram: list[int] = Field(default_factory=list)
    slack_workspace_admins: bool = False


class ApiSettings(_Section):
    tokens_env: str = "INBOX_API_TOKENS"
    _v = field_validator("tokens_env")(_env_name)


class OutboxSettings(_Section):
    max_attempts: int = Field(default=8, ge=1)
    base_delay: float = Field(default=1.0, gt=0)
    max_delay: float = Field(default=300.0, gt=0)
    poll_interval: float = Field(default=0.5, gt=0)


ChannelSettings = Annotated[WebhookChannel | SlackChannel | TelegramChannel, Field(discriminator="kind")]


class CrmSettings(_Section):
    salesforce: SalesforceSettings | None = None


class Settings(_Section):
    """The whole config.toml, validated. `env` is the environment captured at load time."""

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    organization: OrganizationSettings = OrganizationSettings()
    admins: AdminSettings = AdminSettings()
    api: ApiSettings = ApiSettings()
    outbox: OutboxSettings = OutboxSettings()
    channels: list[ChannelSettings] = Field(default_factory=list)
    crm: CrmSettings = CrmSettings()
    log_level: str = "WARNING"
    path: str | None = None
    env: Mapping[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return v.upper()

    @field_validator("channels")
    @classmethod
    def _channels(cls, channels: list[Any]) -> list[Any]:
        # A field validator (not a model one) so it is reported along with the other problems.
        seen: set[str] = set()
        for i, ch in enumerate(channels):
            if ch.name in seen:
                raise ValueError(f"channels[{i}].name: {ch.name!r} is used by another channel")
            seen.add(ch.name)
        return channels

    # --- secrets -------------------------------------------------------------------------
    def secret(self, env_name: str | None) -> str | None:
        """The value of the environment variable `env_name`, or None when unset/blank."""
        if not env_name:
            return None
        value = self.env.get(env_name, "").strip()
        return value or None

    def api_tokens(self) -> frozenset[str]:
        raw = self.secret(self.api.tokens_env) or ""
        return frozenset(t.strip() for t in raw.split(",") if t.strip())

    def channel(self, name: str) -> WebhookChannel | SlackChannel | TelegramChannel | None:
        return next((c for c in self.channels if c.name == name), None)

    def missing_secrets(self, ch: WebhookChannel | SlackChannel | TelegramChannel) -> list[str]:
        """Names of the required environment variables that a channel lacks."""
        return [n for n in ch.required_env() if not self.secret(n)]

    def secret_values(self) -> list[str]:
        """Every configured secret's value (for log redaction)."""
        names: list[str | None] = [self.api.tokens_env]
        for ch in self.channels:
            for key, value in ch.model_dump().items():
                if key.endswith("_env"):
                    names.append(value)
        sf = self.crm.salesforce
        if sf:
            names += [sf.session_id_env, sf.password_env, sf.security_token_env]
        values = [v for n in names if (v := self.secret(n))]
        values += list(self.api_tokens())
        return values


def _format_errors(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        loc_parts: list[str] = []
        for part in e["loc"]:
            if isinstance(part, int):
                loc_parts[-1:] = [f"{loc_parts[-1] if loc_parts else ''}[{part}]"]
            elif part in ("webhook", "slack", "telegram") and loc_parts and loc_parts[-1].startswith("channels["):
                continue  # the discriminator branch name adds nothing for the reader
            else:
                loc_parts.append(str(part))
        loc = ".".join(loc_parts)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (see the README, section Configuration)"
        elif e["type"] in ("union_tag_not_found", "union_tag_invalid"):
            loc, msg = f"{loc}.kind", "must be one of webhook, slack, telegram"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if loc in ("", "channels") and ": " in msg and msg.split(": ", 1)[0].startswith("channels["):
            problems.append(msg)
        else:
            problems.append(f"{loc}: {msg}" if loc else msg)
    return problems


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("INBOX_CONFIG") or "config.toml")


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate config.toml (or `path`, or $INBOX_CONFIG). Raises ConfigError."""
    env = dict(os.environ if env is None else env)
    p = Path(path) if path else default_config_path(env)
    try:
        raw: dict[str, Any] = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{p}: config file not found (pass --config PATH or set INBOX_CONFIG)"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{p}: not valid TOML: {exc}"]) from None
    return settings_from_dict(raw, env=env, path=str(p))


def sqlite_url_relative_to(url: str, base: Path) -> str:
    """`sqlite://data/x.sqlite3` → `sqlite:///BASE/data/x.sqlite3`; absolute, in-memory and other URLs unchanged."""
    if not url.startswith("sqlite://"):
        return url
    rest = url[len("sqlite://") :]
    file, sep, query = rest.partition("?")
    if not file or file == ":memory:" or Path(file).is_absolute():
        return url
    return f"sqlite://{base / file}{sep}{query}"


def _paths_relative_to(settings: Settings, base: Path) -> Settings:
    """Relative paths of a config file (the SQLite store, the default one included, and `ca_file`)
    name places beside that file, wherever the command runs: `inbox-bot check` from another folder
    must find the store `serve` uses, not start a new one."""
    database = settings.database.model_copy(update={"url": sqlite_url_relative_to(settings.database.url, base)})
    crm = settings.crm
    sf = crm.salesforce
    if sf is not None and sf.ca_file and not Path(sf.ca_file).is_absolute():
        crm = crm.model_copy(update={"salesforce": sf.model_copy(update={"ca_file": str(base / sf.ca_file)})})
    return settings.model_copy(update={"database": database, "crm": crm})


def settings_from_dict(raw: Mapping[str, Any], *, env: Mapping[str, str], path: str | None = None) -> Settings:
    """Validate a parsed config. With `path` (the file it came from), relative paths in it are
    resolved against that file's folder."""
    data = dict(raw)
    # `env` and `path` are filled in by the loader; in the file they are unknown keys
    unknown = [f"{k}: unknown key (see the README, section Configuration)" for k in ("env", "path") if k in data]
    for key in ("env", "path"):
        data.pop(key, None)
    try:
        if unknown:
            Settings.model_validate({**data, "env": dict(env), "path": path})  # collect the other problems too
            raise ConfigError(unknown)
        settings = Settings.model_validate({**data, "env": dict(env), "path": path})
    except ValidationError as exc:
        problems = _format_errors(exc)
        # Duplicate names are checked only once every channel is valid; report them with the rest.
        problems += [p for p in _duplicate_channels(data.get("channels")) if p not in problems]
        raise ConfigError(unknown + problems) from None
    if path is None:
        return settings
    return _paths_relative_to(settings, Path(os.path.abspath(path)).parent)


def _duplicate_channels(channels: Any) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for i, ch in enumerate(channels if isinstance(channels, list) else []):
        name = ch.get("name") if isinstance(ch, Mapping) else None
        if isinstance(name, str):
            if name in seen:
                problems.append(f"channels[{i}].name: {name!r} is used by another channel")
            seen.add(name)
    return problems
