"""Salesforce: a Case per linked conversation, its messages as CaseComments, agents' work back.

Out (outbox job `crm_sync`, one conversation at a time): make sure the conversation's Case exists —
upsert by `case_external_id_field` when configured, else create it, looking for the Case of an
earlier attempt first (a create that timed out after Salesforce saved it) — then add every message
not yet on the Case as a private CaseComment, in order, recording each comment's id on its message.

Back (every `poll_seconds`): public CaseComments written by agents on linked Cases are sent to the
contact through the conversation's channel (stored as outbound messages carrying the comment id, so
a comment is sent once); a Case closed in Salesforce resolves the conversation, reopened reopens it.
The poll cursors live in the store, so a restart neither loses nor repeats anything.

simple-salesforce is synchronous (requests): every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import certifi
import requests
from simple_salesforce import Salesforce
from simple_salesforce.api import SFType
from simple_salesforce.exceptions import SalesforceError

from bot import outbox_kinds
from bot.config import SalesforceSettings, Settings
from bot.domain import Status
from bot.metrics import Metrics
from bot.outbox import Outbox, PermanentFailure, RetryLater
from bot.services.inbox import ConversationConflict, ConversationNotFound, Inbox
from bot.store import repo

if TYPE_CHECKING:
    from bot.app import AppState

log = logging.getLogger("inbox.salesforce")

T = TypeVar("T")

TARGET = "salesforce"
AUTHOR = "salesforce"  # inbox.reply does not sync messages of this author back to the Case
COMMENTS_CURSOR = "salesforce:comments_cursor"
CASES_CURSOR = "salesforce:cases_cursor"
# Salesforce commits are not visible the instant CreatedDate says: read again a little way back and
# rely on the stored comment ids to skip what was seen.
CURSOR_OVERLAP = timedelta(seconds=60)
IDS_PER_QUERY = 100
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
COMMENT_MAX = 4_000
TRANSIENT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"})
COMMENT_MARKER = "[inbox-bot message {id}]"
COMMENT_MARKER_RE = re.compile(r"\[inbox-bot message (\d+)\]")


def case_marker(conversation_id: int) -> str:
    """The tag in a Case's Subject that finds it again when no external id field is configured."""
    return f"[inbox #{conversation_id}]"


# --- plain helpers (no IO) -----------------------------------------------------------------------


def soql_quote(value: str) -> str:
    """A SOQL string literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def soql_datetime(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_sf_datetime(value: str) -> datetime:
    """`2026-11-24T10:00:00.000+0000` (Salesforce's format) → aware datetime."""
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(value.replace("Z", "+0000"), fmt)
    raise ValueError(f"not a Salesforce datetime: {value!r}")


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _clip(text: str, limit: int, suffix: str = "") -> str:
    room = limit - len(suffix)
    if len(text) > room:
        text = text[: max(0, room - 1)] + "…"
    return text + suffix


def _who(m: repo.Message, contact_name: str | None) -> str:
    if m.direction == "inbound":
        return contact_name or (m.author or "contact").removeprefix("contact:")
    return f"Team ({m.author})" if m.author else "Team"


def _stamp(m: repo.Message) -> str:
    when = m.sent_at or m.created_at
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if when else ""


def case_fields(conv: repo.Conversation, contact: repo.Contact | None, messages: list[repo.Message]) -> dict[str, Any]:
    """Subject, Description (the transcript), Origin (the channel) and SuppliedName of a new Case."""
    name = contact.name if contact else None
    first = next((m for m in messages if m.direction == "inbound"), None)
    headline = " ".join(first.text.split()) if first else f"Conversation on {conv.channel}"
    lines = [f"[{_stamp(m)}] {_who(m, name)}: {m.text}" for m in messages]
    return {
        "Subject": _clip(headline, SUBJECT_MAX, " " + case_marker(conv.id)),
        "Description": _clip("\n".join(lines), DESCRIPTION_MAX),
        "Origin": conv.channel,
        "SuppliedName": _clip(name or (contact.platform_id if contact else ""), 80),
    }


def comment_body(m: repo.Message, contact_name: str | None) -> str:
    """A message as a CaseComment, ending with the marker that finds it again after a timeout."""
    how = "from the contact" if m.direction == "inbound" else "sent"
    head = f"{_who(m, contact_name)} ({how}, {_stamp(m)}):\n"
    return _clip(head + m.text, COMMENT_MAX, "\n\n" + COMMENT_MARKER.format(id=m.id))


def translate_error(exc: BaseException) -> Exception:
    """simple-salesforce / requests errors → RetryLater (worth another try) or PermanentFailure."""
    if isinstance(exc, requests.Timeout):
        return RetryLater(f"Salesforce did not answer in time: {exc}")
    if isinstance(exc, requests.RequestException):
        return RetryLater(f"Salesforce unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, SalesforceError):
        code, message = _error_detail(exc.content)
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


def _error_detail(content: Any) -> tuple[str | None, str | None]:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0].get("errorCode"), str(content[0].get("message", ""))[:300]
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return None, str(content)[:300] if content else None


def _sobject(sf: Salesforce, name: str) -> SFType:
    return cast(SFType, getattr(sf, name))


def _create(name: str, data: dict[str, Any], sf: Salesforce) -> Any:
    return _sobject(sf, name).create(data)


class _Session(requests.Session):
    """A requests session with a default timeout (simple-salesforce passes none on most calls)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
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


class SalesforceCrm:
    """The Salesforce side of the `crm` action: outbox handler plus poll loop."""

    def __init__(
        self,
        sf: SalesforceSettings,
        *,
        settings: Settings,
        inbox: Inbox,
        outbox: Outbox,
        metrics: Metrics,
        concurrency: int = 4,
    ) -> None:
        self.sf = sf
        self.settings = settings
        self.inbox = inbox
        self.outbox = outbox
        self.metrics = metrics
        self._client: Salesforce | None = None
        self._connect_lock = asyncio.Lock()
        self._poll_lock = asyncio.Lock()
        self._calls = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._bundle: str | None = None
        self._old_bundles: list[str] = []  # CA bundles of dropped clients: removed on stop

    @classmethod
    def from_settings(cls, sf: SalesforceSettings, state: AppState) -> SalesforceCrm:
        crm = cls(sf, settings=state.settings, inbox=state.inbox, outbox=state.outbox, metrics=state.metrics)
        state.outbox.register(outbox_kinds.CRM_SYNC, crm.sync_conversation)
        return crm

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.client()
        except Exception as exc:  # the outbox and the poll loop try again; the inbox keeps working
            log.error("Salesforce: cannot connect yet (%s); will retry", exc)
        if self._task is None:
            self._task = asyncio.create_task(self._poll_loop(), name="salesforce-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
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
        session_id = self.settings.secret(sf.session_id_env)
        if session_id:
            return Salesforce(
                instance_url=sf.instance_url, session_id=session_id, version=sf.api_version, session=session
            )
        username = self.settings.secret(sf.username_env)
        password = self.settings.secret(sf.password_env)
        if not (username and password):
            missing = [n for n in (sf.session_id_env, sf.username_env, sf.password_env) if n]
            raise PermanentFailure(f"Salesforce login missing: set {' or '.join(missing)} in the environment")
        return Salesforce(
            username=username,
            password=password,
            security_token=self.settings.secret(sf.security_token_env) or "",
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
        if self.settings.secret(env):
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

    # --- out: the Case and its comments ------------------------------------------------------------
    async def sync_conversation(self, payload: dict[str, Any]) -> None:
        """Outbox handler for `crm_sync`: idempotent, safe to run again after any failure."""
        conversation_id = int(payload["conversation_id"])
        conv = await repo.get_conversation(conversation_id)
        if conv is None:
            return
        if conv.crm_target != TARGET:
            raise PermanentFailure(f"conversation {conversation_id} is not linked to Salesforce")
        contact = await repo.get_contact(conv.contact_id)
        case_id, upto = conv.crm_case_id, conv.crm_transcript_upto
        if not case_id:
            case_id, upto = await self._ensure_case(conv, contact)
        await self._sync_comments(
            conv.id, contact, case_id=case_id, after_id=upto or 0, pending=conv.crm_pending_message_id
        )

    async def _ensure_case(self, conv: repo.Conversation, contact: repo.Contact | None) -> tuple[str, int]:
        """The conversation's Case, created (or found) and recorded: (Case id, last message in its
        Description)."""
        upto = conv.crm_transcript_upto
        earlier_attempt = upto is not None
        if upto is None:
            # Fix what the Description holds before the first try: a retry sends the same Case, and
            # the messages after it become comments.
            upto = await repo.crm_last_message_id(conv.id)
            await repo.set_crm_fields(conv.id, crm_transcript_upto=upto)
        messages, _ = await repo.conversation_messages(conv.id)
        fields = case_fields(conv, contact, [m for m in messages if m.id <= upto])
        field = self.sf.case_external_id_field
        record: dict[str, Any] | None = None
        if field:
            await self._call(lambda sf: _sobject(sf, "Case").upsert(f"{field}/{conv.id}", fields))
            record = await self._call(lambda sf: _sobject(sf, "Case").get_by_custom_id(field, str(conv.id)))
        else:
            if earlier_attempt:
                record = await self._find_case(conv.id)
            if record is None:
                created = await self._call(functools.partial(_create, "Case", fields))
                new_id = str(created["id"])
                record = await self._call(lambda sf: _sobject(sf, "Case").get(new_id))
        assert record is not None
        case_id, case_number = str(record["Id"]), record.get("CaseNumber")
        await repo.set_crm_fields(
            conv.id,
            crm_case_id=case_id,
            crm_case_number=case_number,
            crm_status=record.get("Status"),
            crm_closed=bool(record.get("IsClosed")),
        )
        log.info("conversation %s linked to Salesforce Case %s", conv.id, case_number)
        return case_id, upto

    async def _find_case(self, conversation_id: int) -> dict[str, Any] | None:
        marker = case_marker(conversation_id)
        rows = await self._query_all(
            "SELECT Id, CaseNumber, Status, IsClosed FROM Case "
            f"WHERE Subject LIKE {soql_quote('%' + marker + '%')} ORDER BY CreatedDate LIMIT 1"
        )
        return rows[0] if rows else None

    async def _sync_comments(
        self,
        conversation_id: int,
        contact: repo.Contact | None,
        *,
        case_id: str,
        after_id: int,
        pending: int | None,
    ) -> None:
        messages = await repo.crm_unsynced_messages(conversation_id, after_id=after_id)
        name = contact.name if contact else None
        for m in messages:
            if pending == m.id:
                # The last create of this comment got no answer: it may exist; look before sending.
                existing = await self._existing_comments(case_id)
                if m.id in existing:
                    await repo.crm_comment_done(m.id, existing[m.id], conversation_id)
                    pending = None
                    continue
            if pending != m.id:
                await repo.set_crm_fields(conversation_id, crm_pending_message_id=m.id)
                pending = m.id
            data = {"ParentId": case_id, "CommentBody": comment_body(m, name), "IsPublished": False}
            created = await self._call(functools.partial(_create, "CaseComment", data))
            await repo.crm_comment_done(m.id, str(created["id"]), conversation_id)
            pending = None

    async def _existing_comments(self, case_id: str) -> dict[int, str]:
        """Our comments on the Case, by the message id in their marker."""
        rows = await self._query_all(
            f"SELECT Id, CommentBody FROM CaseComment WHERE ParentId = {soql_quote(case_id)} ORDER BY CreatedDate"
        )
        found: dict[int, str] = {}
        for r in rows:
            match = COMMENT_MARKER_RE.search(r.get("CommentBody") or "")
            if match:
                found.setdefault(int(match.group(1)), str(r["Id"]))
        return found

    # --- back: agents' comments and Case status --------------------------------------------------
    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.connector_errors.labels(TARGET).inc()
                log.warning("Salesforce poll failed (%s); trying again in %ss", exc, self.sf.poll_seconds)
            await asyncio.sleep(self.sf.poll_seconds)

    async def poll_once(self) -> None:
        """Bring new agent comments and Case status changes into the inbox (one pass)."""
        async with self._poll_lock:
            linked = await repo.crm_linked_conversations(TARGET)
            if not linked:
                return
            by_case = {str(c.crm_case_id): c for c in linked}
            await self._poll_comments(by_case)
            await self._poll_cases(by_case)

    async def _since(self, key: str) -> str | None:
        raw = await repo.kv_get(key)
        return soql_datetime(datetime.fromisoformat(raw) - CURSOR_OVERLAP) if raw else None

    async def _query_cases(
        self,
        select: str,
        *,
        condition: str | None,
        case_field: str,
        since_field: str,
        since: str | None,
        order: str,
        case_ids: Iterable[str],
    ) -> list[dict[str, Any]]:
        """Rows of `select` for the linked Cases (IDS_PER_QUERY ids a query), changed since `since`."""
        rows: list[dict[str, Any]] = []
        for ids in _chunks(sorted(case_ids), IDS_PER_QUERY):
            where = [condition] if condition else []
            where.append(f"{case_field} IN ({', '.join(soql_quote(i) for i in ids)})")
            if since:
                where.append(f"{since_field} >= {since}")
            rows += await self._query_all(f"{select} WHERE {' AND '.join(where)} ORDER BY {order}")
        return rows

    async def _poll_comments(self, by_case: dict[str, repo.Conversation]) -> None:
        rows = await self._query_cases(
            "SELECT Id, ParentId, CommentBody, CreatedDate FROM CaseComment",
            condition="IsPublished = true",
            case_field="ParentId",
            since_field="CreatedDate",
            since=await self._since(COMMENTS_CURSOR),
            order="CreatedDate, Id",
            case_ids=by_case,
        )
        if not rows:
            return
        rows.sort(key=lambda r: (parse_sf_datetime(r["CreatedDate"]), r["Id"]))
        known = await repo.known_crm_comments([str(r["Id"]) for r in rows])
        for r in rows:
            comment_id, body = str(r["Id"]), (r.get("CommentBody") or "").strip()
            conv = by_case.get(str(r.get("ParentId")))
            if comment_id in known or conv is None or not body or COMMENT_MARKER_RE.search(body):
                continue  # sent already, ours, or empty
            await self._send_agent_comment(conv.id, comment_id, body)
        newest = max(parse_sf_datetime(r["CreatedDate"]) for r in rows)
        await repo.kv_set(COMMENTS_CURSOR, newest.isoformat())

    async def _send_agent_comment(self, conversation_id: int, comment_id: str, body: str) -> None:
        try:
            # The outbound message and the comment id it came from commit together: a comment is
            # sent once, also across restarts and with several workers polling.
            await self.inbox.reply(conversation_id, text=body, author=AUTHOR, crm_comment_id=comment_id)
        except repo.IntegrityError:
            log.info("Salesforce comment %s was already sent by another worker", comment_id)
            return
        except ConversationNotFound:
            return
        except ConversationConflict as exc:
            # Skipped, not retried: one comment that cannot be sent must not block every later one.
            self.metrics.connector_errors.labels(TARGET).inc()
            log.warning(
                "Salesforce comment %s not sent to conversation %s and skipped: %s", comment_id, conversation_id, exc
            )
            return
        log.info("agent comment %s sent to conversation %s", comment_id, conversation_id)

    async def _poll_cases(self, by_case: dict[str, repo.Conversation]) -> None:
        rows = await self._query_cases(
            "SELECT Id, CaseNumber, Status, IsClosed, SystemModstamp FROM Case",
            condition=None,
            case_field="Id",
            since_field="SystemModstamp",
            since=await self._since(CASES_CURSOR),
            order="SystemModstamp",
            case_ids=by_case,
        )
        for r in rows:
            conv = by_case.get(str(r["Id"]))
            if conv is not None:
                await self._apply_case_state(conv, r)
        if rows:
            newest = max(parse_sf_datetime(r["SystemModstamp"]) for r in rows)
            await repo.kv_set(CASES_CURSOR, newest.isoformat())

    async def _apply_case_state(self, conv: repo.Conversation, record: dict[str, Any]) -> None:
        closed = bool(record.get("IsClosed"))
        was_closed = bool(conv.crm_closed)
        try:
            if closed and not was_closed and conv.status == Status.OPEN.value:
                await self.inbox.resolve(conv.id, actor=AUTHOR, reason=None)
                log.info("conversation %s resolved: Case %s closed", conv.id, conv.crm_case_number)
            elif not closed and was_closed and conv.status == Status.RESOLVED.value:
                await self.inbox.reopen(conv.id, actor=AUTHOR)
                log.info("conversation %s reopened: Case %s reopened", conv.id, conv.crm_case_number)
        except ConversationConflict as exc:
            log.info("Case %s changed; conversation %s left as is: %s", conv.crm_case_number, conv.id, exc)
        if closed != was_closed or record.get("Status") != conv.crm_status:
            await repo.set_crm_fields(conv.id, crm_closed=closed, crm_status=record.get("Status"))


__all__ = ["SalesforceCrm", "build_session", "case_fields", "comment_body", "translate_error"]
