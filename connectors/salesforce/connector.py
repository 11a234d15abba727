"""Salesforce behind the `Crm` interface: log in, create or upsert Cases, add CaseComments, read
back what agents wrote and which Cases changed. IO only: what to sync and when lives in
`bot.services.crm`.

simple-salesforce is synchronous (requests): every call runs in a worker thread, a few at a time.
A session Salesforce refuses (401) is dropped so that the next call logs in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import certifi
import requests
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

from bot.metrics import Metrics
from bot.outbox import PermanentFailure, RetryLater
from connectors.base import CaseDraft, Crm, CrmCase, CrmComment
from connectors.salesforce.normalize import (
    case_fields,
    case_from_record,
    chunks,
    comment_from_record,
    error_detail,
    soql_datetime,
    soql_quote,
)
from connectors.salesforce.settings import SalesforceSettings

log = logging.getLogger("inbox.salesforce")

T = TypeVar("T")

TARGET = "salesforce"
IDS_PER_QUERY = 100
TRANSIENT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"})


def translate_error(exc: BaseException) -> Exception:
    """simple-salesforce / requests errors → RetryLater (worth another try) or PermanentFailure."""
    if isinstance(exc, requests.Timeout):
        return RetryLater(f"Salesforce did not answer in time: {exc}")
    if isinstance(exc, requests.RequestException):
        return RetryLater(f"Salesforce unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, SalesforceAuthenticationFailed):  # a username/password login refused
        return RetryLater(
            f"Salesforce refused the login ({exc.code}): {exc.auth_message[:300]} — check the username, "
            "password and security token in the environment variables named by [salesforce] username_env, "
            "password_env and security_token_env; the job is tried again later"
        )
    if isinstance(exc, SalesforceError):
        code, message = error_detail(exc.content)
        what = f"Salesforce answered {exc.status}" + (f" {code}" if code else "")
        what += f": {message}" if message else ""
        if exc.status >= 500 or exc.status == 429 or code in TRANSIENT_CODES:
            return RetryLater(what, retry_after=60.0 if code == "REQUEST_LIMIT_EXCEEDED" else None)
        if exc.status == 401:
            return RetryLater(
                what + " — the next try logs in again (a configured session id cannot be renewed: set a "
                "fresh one and restart)"
            )
        return PermanentFailure(what)
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def _sobject(sf: Salesforce, name: str) -> SFType:
    return cast(SFType, getattr(sf, name))


def _create(name: str, data: dict[str, Any], sf: Salesforce) -> Any:
    return _sobject(sf, name).create(data)


class _Session(requests.Session):
    """A requests session with a default timeout (simple-salesforce passes none on most calls)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


def build_session(sf: SalesforceSettings, *, env: dict[str, str] | None = None) -> requests.Session:
    """The HTTP session for Salesforce. With `ca_file`, trust it on top of the usual CAs.

    requests ignores `Session.verify` when REQUESTS_CA_BUNDLE is set, so with an extra CA the
    session stops reading the environment (trust_env = False), keeps the environment's proxy for the
    instance, and verifies against one bundle: the usual CAs plus `ca_file`.
    """
    session = _Session(sf.timeout)
    if sf.ca_file:
        env = dict(os.environ if env is None else env)
        base = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or certifi.where()
        parts = []
        for path in (base, sf.ca_file):
            with contextlib.suppress(OSError), open(path, encoding="utf-8") as fh:
                parts.append(fh.read())
        if not parts or not os.path.exists(sf.ca_file):
            raise ValueError(f"crm.salesforce.ca_file: cannot read {sf.ca_file}")
        fd, bundle = tempfile.mkstemp(prefix="inbox-sf-ca-", suffix=".pem")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(parts))
        session.trust_env = False
        session.verify = bundle
        session.proxies = requests.utils.get_environ_proxies(sf.instance_url)
    return session


class SalesforceCrm(Crm):
    """One Salesforce org, reached with simple-salesforce."""

    target = TARGET
    title = "Salesforce"
    subject_max = 255
    description_max = 32_000
    comment_max = 4_000
    name_max = 80  # SuppliedName

    def __init__(
        self,
        sf: SalesforceSettings,
        *,
        secret: Callable[[str | None], str | None],
        metrics: Metrics,
        concurrency: int = 4,
    ) -> None:
        self.sf = sf
        # Read at each login, not once: a fresh session id set in the environment is picked up.
        self._secret = secret
        self.metrics = metrics
        self._client: Salesforce | None = None
        self._connect_lock = asyncio.Lock()
        self._calls = asyncio.Semaphore(concurrency)
        self._bundle: str | None = None
        self._old_bundles: list[str] = []  # CA bundles of dropped clients: removed on stop

    @classmethod
    def from_settings(
        cls, sf: SalesforceSettings, *, secret: Callable[[str | None], str | None], metrics: Metrics
    ) -> SalesforceCrm:
        """The CRM of `[crm.salesforce]`; `secret(name)` reads an environment variable."""
        return cls(sf, secret=secret, metrics=metrics)

    @property
    def poll_seconds(self) -> float:
        return self.sf.poll_seconds

    @property
    def upserts(self) -> bool:
        return bool(self.sf.case_external_id_field)

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.client()
        except Exception as exc:  # the outbox and the poll loop try again; the inbox keeps working
            log.error("Salesforce: cannot connect yet (%s); will retry", exc)

    async def stop(self) -> None:
        if self._client is not None:
            self._client.session.close()
            self._client = None
        for bundle in [*self._old_bundles, self._bundle]:
            if bundle:
                with contextlib.suppress(OSError):
                    os.unlink(bundle)
        self._bundle, self._old_bundles = None, []

    # --- the client ------------------------------------------------------------------------------
    async def client(self) -> Salesforce:
        """The logged-in client (username/password login is a network call: done in a thread)."""
        if self._client is not None:
            return self._client
        async with self._connect_lock:
            if self._client is None:
                self._client = await self._run(self._connect)
        return self._client

    def _connect(self) -> Salesforce:
        sf = self.sf
        session = build_session(sf)
        if isinstance(session.verify, str) and sf.ca_file:
            self._bundle = session.verify
        session_id = self._secret(sf.session_id_env)
        if session_id:
            return Salesforce(
                instance_url=sf.instance_url, session_id=session_id, version=sf.api_version, session=session
            )
        username = self._secret(sf.username_env)
        password = self._secret(sf.password_env)
        if not (username and password):
            missing = [n for n in (sf.session_id_env, sf.username_env, sf.password_env) if n]
            raise PermanentFailure(f"Salesforce login missing: set {' or '.join(missing)} in the environment")
        return Salesforce(
            username=username,
            password=password,
            security_token=self._secret(sf.security_token_env) or "",
            domain=sf.domain,
            version=sf.api_version,
            session=session,
        )

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run one blocking Salesforce call in a worker thread; errors come back as outbox errors."""
        async with self._calls:
            try:
                return await asyncio.to_thread(fn)
            except (RetryLater, PermanentFailure):
                raise
            except (SalesforceError, requests.RequestException) as exc:
                raise translate_error(exc) from exc

    async def _call(self, fn: Callable[[Salesforce], T]) -> T:
        sf = await self.client()
        try:
            return await self._run(lambda: fn(sf))
        except (RetryLater, PermanentFailure) as exc:
            cause = exc.__cause__
            if isinstance(cause, SalesforceError) and cause.status == 401:  # SalesforceExpiredSession
                await self._session_expired(sf)
            raise

    async def _session_expired(self, sf: Salesforce) -> None:
        """Drop the client whose session Salesforce refused, so the next call logs in again."""
        async with self._connect_lock:
            if self._client is not sf:
                return  # another call dropped it already (and maybe logged in again)
            self._client = None
            if self._bundle:
                self._old_bundles.append(self._bundle)
                self._bundle = None
        self.metrics.connector_errors.labels(TARGET).inc()
        env = self.sf.session_id_env
        if self._secret(env):
            log.error(
                "Salesforce refused the session id in %s (expired or revoked): a session id cannot be "
                "renewed by the bot — set a fresh one in %s and restart, or configure username_env and "
                "password_env so the bot logs in by itself",
                env,
                env,
            )
        else:
            log.warning("Salesforce session expired: logging in again on the next call")

    async def _query_all(self, soql: str) -> list[dict[str, Any]]:
        result = await self._call(lambda sf: sf.query_all(soql))
        return list(result.get("records", []))

    # --- Cases and comments ----------------------------------------------------------------------
    async def create_case(self, draft: CaseDraft) -> CrmCase:
        created = await self._call(functools.partial(_create, "Case", case_fields(draft)))
        new_id = str(created["id"])
        return case_from_record(await self._call(lambda sf: _sobject(sf, "Case").get(new_id)))

    async def upsert_case(self, key: str, draft: CaseDraft) -> CrmCase:
        field = self.sf.case_external_id_field
        if not field:
            raise PermanentFailure("crm.salesforce.case_external_id_field is not set: Cases cannot be upserted")
        fields = case_fields(draft)
        await self._call(lambda sf: _sobject(sf, "Case").upsert(f"{field}/{key}", fields))
        return case_from_record(await self._call(lambda sf: _sobject(sf, "Case").get_by_custom_id(field, key)))

    async def find_case(self, subject_marker: str) -> CrmCase | None:
        rows = await self._query_all(
            "SELECT Id, CaseNumber, Status, IsClosed FROM Case "
            f"WHERE Subject LIKE {soql_quote('%' + subject_marker + '%')} ORDER BY CreatedDate LIMIT 1"
        )
        return case_from_record(rows[0]) if rows else None

    async def add_comment(self, case_id: str, body: str) -> str:
        data = {"ParentId": case_id, "CommentBody": body, "IsPublished": False}
        created = await self._call(functools.partial(_create, "CaseComment", data))
        return str(created["id"])

    async def comments(self, case_id: str) -> list[CrmComment]:
        rows = await self._query_all(
            f"SELECT Id, CommentBody FROM CaseComment WHERE ParentId = {soql_quote(case_id)} ORDER BY CreatedDate"
        )
        return [comment_from_record(r, case_id=case_id) for r in rows]

    async def published_comments(self, case_ids: Sequence[str], *, since: datetime | None) -> list[CrmComment]:
        rows = await self._query_cases(
            "SELECT Id, ParentId, CommentBody, CreatedDate FROM CaseComment",
            condition="IsPublished = true",
            case_field="ParentId",
            since_field="CreatedDate",
            since=since,
            order="CreatedDate, Id",
            case_ids=case_ids,
        )
        found = [comment_from_record(r) for r in rows]
        # one query per chunk of Cases: put the chunks' answers back in time order
        found.sort(key=lambda c: (c.created_at is None, c.created_at, c.id))
        return found

    async def changed_cases(self, case_ids: Sequence[str], *, since: datetime | None) -> list[CrmCase]:
        rows = await self._query_cases(
            "SELECT Id, CaseNumber, Status, IsClosed, SystemModstamp FROM Case",
            condition=None,
            case_field="Id",
            since_field="SystemModstamp",
            since=since,
            order="SystemModstamp",
            case_ids=case_ids,
        )
        return [case_from_record(r) for r in rows]

    async def _query_cases(
        self,
        select: str,
        *,
        condition: str | None,
        case_field: str,
        since_field: str,
        since: datetime | None,
        order: str,
        case_ids: Sequence[str],
    ) -> list[dict[str, Any]]:
        """Rows of `select` for these Cases (IDS_PER_QUERY ids a query), changed since `since`."""
        rows: list[dict[str, Any]] = []
        for ids in chunks(case_ids, IDS_PER_QUERY):
            where = [condition] if condition else []
            where.append(f"{case_field} IN ({', '.join(soql_quote(i) for i in ids)})")
            if since is not None:
                where.append(f"{since_field} >= {soql_datetime(since)}")
            rows += await self._query_all(f"{select} WHERE {' AND '.join(where)} ORDER BY {order}")
        return rows


__all__ = ["SalesforceCrm", "build_session", "translate_error"]
