"""A local double of the Salesforce REST API (the parts inbox-bot uses), served over HTTPS in tests.

Speaks the documented wire format: `POST …/sobjects/Case/`, `PATCH|GET …/sobjects/Case/<Field>/<value>`
(upsert / get by external id), `GET …/sobjects/Case/<Id>`, `POST …/sobjects/CaseComment/`,
`GET …/query/?q=<SOQL>` with `nextRecordsUrl` paging. Records are shaped after the JSON fixtures in
tests/payloads/salesforce/. A tiny SOQL evaluator handles the statements the bot sends
(SELECT … FROM … WHERE a AND b … ORDER BY … LIMIT n with =, >=, IN, LIKE).

Username/password login: `POST /services/Soap/u/<version>` (the SOAP API's `login`, as
simple-salesforce sends it) answers a `loginResponse` with a new session id and the org's My
Domain serverUrl, or a `LoginFault` (INVALID_LOGIN); `expire_session()` ends the current session.

Faults: `fail(op, 500 | 503 | "timeout", times=n)` — a status answers with a Salesforce error body
and changes nothing; "timeout" does the work, then answers only after `slow_seconds` (the client
gives up first: Salesforce created the record but the caller never heard).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads" / "salesforce"
SF_TIME = "%Y-%m-%dT%H:%M:%S.000+0000"
AGENT_USER = "005Hs00000AgEnTIAV"
INTEGRATION_USER = "005Hs00000InTeGIAV"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


@dataclass
class Fault:
    op: str
    mode: int | str
    times: int


@dataclass
class SalesforceDouble:
    session_id: str = "00DHs0000000001!AQ4AQFakeSessionForTests"
    version: str = "59.0"
    page_size: int = 2000
    slow_seconds: float = 1.0
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (op, detail)
    faults: list[Fault] = field(default_factory=list)
    login_user: str | None = None  # username/password login: see allow_login()
    login_password: str | None = None
    my_domain: str = "inbox-test.my.salesforce.com"
    _clock: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    _seq: int = 0
    _cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    # --- test helpers ----------------------------------------------------------------------------
    def fail(self, op: str, mode: int | str, *, times: int = 1) -> None:
        """Make the next `times` requests of `op` fail (op: create_case, upsert_case, get_case,
        create_comment, query, or * for any)."""
        self.faults.append(Fault(op, mode, times))

    def calls(self, op: str) -> int:
        return sum(1 for o, _ in self.requests if o == op)

    def comments_of(self, case_id: str) -> list[dict[str, Any]]:
        return sorted((c for c in self.comments.values() if c["ParentId"] == case_id), key=lambda c: c["Id"])

    def add_agent_comment(self, case_id: str, body: str, *, public: bool = True) -> str:
        return self._insert_comment({"ParentId": case_id, "CommentBody": body, "IsPublished": public}, user=AGENT_USER)[
            "Id"
        ]

    def set_case_status(self, case_id: str, status: str, *, closed: bool) -> None:
        case = self.cases[case_id]
        now = self._tick()
        case.update(
            Status=status,
            IsClosed=closed,
            ClosedDate=now if closed else None,
            LastModifiedDate=now,
            SystemModstamp=now,
            LastModifiedById=AGENT_USER,
        )

    # --- internals --------------------------------------------------------------------------------
    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.strftime(SF_TIME)

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}Hs{self._seq:010d}IAQ"

    def _insert_case(self, data: dict[str, Any]) -> dict[str, Any]:
        record = load("case.json")
        now = self._tick()
        case_id = self._next_id("500")
        record.update(
            Id=case_id,
            CaseNumber=f"{1000 + len(self.cases) + 1:08d}",
            CreatedDate=now,
            LastModifiedDate=now,
            SystemModstamp=now,
            CreatedById=INTEGRATION_USER,
            LastModifiedById=INTEGRATION_USER,
            OwnerId=INTEGRATION_USER,
        )
        record["attributes"]["url"] = f"/services/data/v{self.version}/sobjects/Case/{case_id}"
        record.update(data)
        self.cases[case_id] = record
        return record

    def _insert_comment(self, data: dict[str, Any], *, user: str) -> dict[str, Any]:
        record = load("case_comment.json")
        now = self._tick()
        comment_id = self._next_id("00a")
        record.update(
            Id=comment_id,
            CreatedDate=now,
            SystemModstamp=now,
            LastModifiedDate=now,
            CreatedById=user,
            LastModifiedById=user,
        )
        record["attributes"]["url"] = f"/services/data/v{self.version}/sobjects/CaseComment/{comment_id}"
        record.update(data)
        self.comments[comment_id] = record
        parent = self.cases[record["ParentId"]]
        parent.update(LastModifiedDate=now, SystemModstamp=now)
        return record

    def _fault(self, op: str) -> int | str | None:
        for f in self.faults:
            if f.times > 0 and f.op in (op, "*"):
                f.times -= 1
                return f.mode
        return None

    # --- username/password login (the SOAP API's `login` call) ----------------------------------
    def allow_login(self, username: str, password: str, *, my_domain: str) -> None:
        """Accept `username` with `password` (the user's password followed by the security token,
        as clients send it); the session's serverUrl then names `my_domain` (the org's My Domain)."""
        self.login_user, self.login_password, self.my_domain = username, password, my_domain

    def expire_session(self) -> None:
        """Salesforce ends the current session: calls with it answer 401 INVALID_SESSION_ID."""
        self.session_id = f"00DHs0000000001!AQ4AQExpired{uuid.uuid4().hex[:8]}"

    async def _soap_login(self, request: web.Request) -> web.Response:
        from xml.etree import ElementTree

        body = await request.read()
        ns = {"urn": "urn:partner.soap.sforce.com"}
        try:
            root = ElementTree.fromstring(body)
            username = root.findtext(".//urn:login/urn:username", namespaces=ns)
            password = root.findtext(".//urn:login/urn:password", namespaces=ns)
        except ElementTree.ParseError:
            username = password = None
        self.requests.append(("login", username or ""))
        if (
            request.headers.get("SOAPAction") != "login"
            or not username
            or ((username, password) != (self.login_user, self.login_password))
        ):
            fault = (
                '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:sf="urn:fault.partner.soap.sforce.com">'
                "<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>"
                "<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out."
                "</faultstring>"
                "<detail><sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>"
                "Invalid username, password, security token; or user locked out.</sf:exceptionMessage>"
                "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
            )
            return web.Response(status=500, body=fault.encode(), content_type="text/xml")
        self.session_id = f"00DHs0000000001!AQ4AQLogin{uuid.uuid4().hex[:16]}"
        version = request.match_info["version"]
        server = f"https://{self.my_domain}/services/Soap/u/{version}/00DHs0000000001"
        answer = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
            "<soapenv:Body><loginResponse><result>"
            f"<metadataServerUrl>https://{self.my_domain}/services/Soap/m/{version}/00DHs0000000001</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{server}</serverUrl><sessionId>{self.session_id}</sessionId>"
            f"<userId>{INTEGRATION_USER}</userId>"
            f"<userInfo><organizationId>00DHs0000000001</organizationId><userName>{username}</userName></userInfo>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return web.Response(body=answer.encode(), content_type="text/xml")

    # --- the app ----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/services/Soap/u/{version}", self._soap_login)
        base = "/services/data/v{version}"
        app.router.add_post(base + "/sobjects/{obj}/", self._create)
        app.router.add_get(base + "/sobjects/{obj}/{id}", self._get)
        app.router.add_get(base + "/sobjects/{obj}/{field}/{value}", self._get_by_external_id)
        app.router.add_patch(base + "/sobjects/{obj}/{field}/{value}", self._upsert)
        app.router.add_get(base + "/query/", self._query)
        app.router.add_get(base + "/query/{locator}", self._query_more)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/services/Soap/u/"):  # the login itself carries no session
            return await handler(request)
        if request.headers.get("Authorization") != f"Bearer {self.session_id}":
            return web.json_response(load("error_invalid_session.json"), status=401)
        return await handler(request)

    async def _answer(self, op: str, detail: str, work: Any) -> web.Response:
        """Apply a fault for `op` if one is due, else do `work()` → (status, body)."""
        self.requests.append((op, detail))
        mode = self._fault(op)
        if mode == 500:
            return web.json_response(load("error_unknown_exception.json"), status=500)
        if mode == 503:
            return web.json_response(load("error_server_unavailable.json"), status=503)
        status, body = work()
        if mode == "timeout":
            await asyncio.sleep(self.slow_seconds)
        if body is None:
            return web.Response(status=status)
        return web.json_response(body, status=status)

    @staticmethod
    def _error(status: int, code: str, message: str, fields: list[str] | None = None) -> tuple[int, Any]:
        return status, [{"message": message, "errorCode": code, "fields": fields or []}]

    def _validate(self, obj: str, data: dict[str, Any]) -> tuple[int, Any] | None:
        limits = {"Subject": 255, "SuppliedName": 80, "Description": 32000, "CommentBody": 4000}
        for key, value in data.items():
            if isinstance(value, str) and key in limits and len(value) > limits[key]:
                return self._error(400, "STRING_TOO_LONG", f"{key}: data value too large", [key])
        if obj == "CaseComment" and data.get("ParentId") not in self.cases:
            return self._error(400, "FIELD_INTEGRITY_EXCEPTION", "Parent ID: id value of incorrect type", ["ParentId"])
        return None

    async def _create(self, request: web.Request) -> web.Response:
        obj = request.match_info["obj"]
        data = await request.json()

        def work() -> tuple[int, Any]:
            bad = self._validate(obj, data)
            if bad:
                return bad
            if obj == "Case":
                record = self._insert_case(data)
            elif obj == "CaseComment":
                record = self._insert_comment(data, user=INTEGRATION_USER)
            else:
                return self._error(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
            body = load("create_success.json")
            body["id"] = record["Id"]
            return 201, body

        op = "create_case" if obj == "Case" else "create_comment" if obj == "CaseComment" else "create"
        return await self._answer(op, json.dumps(data), work)

    def _table(self, obj: str) -> dict[str, dict[str, Any]]:
        return self.cases if obj == "Case" else self.comments

    async def _get(self, request: web.Request) -> web.Response:
        obj, rid = request.match_info["obj"], request.match_info["id"]

        def work() -> tuple[int, Any]:
            record = self._table(obj).get(rid)
            if record is None:
                return 404, load("error_not_found.json")
            return 200, copy.deepcopy(record)

        return await self._answer("get_case" if obj == "Case" else "get", rid, work)

    def _by_external_id(self, field_name: str, value: str) -> list[dict[str, Any]]:
        return [c for c in self.cases.values() if str(c.get(field_name)) == value]

    async def _get_by_external_id(self, request: web.Request) -> web.Response:
        field_name, value = request.match_info["field"], request.match_info["value"]

        def work() -> tuple[int, Any]:
            found = self._by_external_id(field_name, value)
            if not found:
                return 404, load("error_not_found.json")
            if len(found) > 1:
                return 300, [c["attributes"]["url"] for c in found]
            return 200, copy.deepcopy(found[0])

        return await self._answer("get_case", f"{field_name}/{value}", work)

    async def _upsert(self, request: web.Request) -> web.Response:
        obj = request.match_info["obj"]
        field_name, value = request.match_info["field"], request.match_info["value"]
        data = await request.json()

        def work() -> tuple[int, Any]:
            if obj != "Case":
                return 404, load("error_not_found.json")
            if field_name in data:
                return self._error(400, "INVALID_FIELD", f"{field_name} goes in the URL", [field_name])
            bad = self._validate(obj, data)
            if bad:
                return bad
            found = self._by_external_id(field_name, value)
            if len(found) > 1:
                return 300, [c["attributes"]["url"] for c in found]
            body = load("upsert_created.json")
            if found:
                now = self._tick()
                found[0].update(data, LastModifiedDate=now, SystemModstamp=now)
                body.update(id=found[0]["Id"], created=False)
                return 200, body
            record = self._insert_case({**data, field_name: value})
            body["id"] = record["Id"]
            return 201, body

        return await self._answer("upsert_case", f"{field_name}/{value} {json.dumps(data)}", work)

    async def _query(self, request: web.Request) -> web.Response:
        soql = request.query.get("q", "")

        def work() -> tuple[int, Any]:
            try:
                rows = self.run_soql(soql)
            except ValueError as exc:
                return self._error(400, "MALFORMED_QUERY", str(exc))
            return 200, self._page(rows)

        return await self._answer("query", soql, work)

    async def _query_more(self, request: web.Request) -> web.Response:
        locator = request.match_info["locator"]

        def work() -> tuple[int, Any]:
            rows = self._cursors.pop(locator, None)
            if rows is None:
                return self._error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return 200, self._page(rows)

        return await self._answer("query", locator, work)

    def _page(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        body = load("query_page.json")
        body["totalSize"] = len(rows)
        body["records"] = rows[: self.page_size]
        rest = rows[self.page_size :]
        if rest:
            locator = f"01g{uuid.uuid4().hex[:12]}-{self.page_size}"
            self._cursors[locator] = rest
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/v{self.version}/query/{locator}"
        else:
            body["done"] = True
            body.pop("nextRecordsUrl", None)
        return body

    # --- a very small SOQL ------------------------------------------------------------------------
    _SELECT = re.compile(
        r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)"
        r"(?:\s+WHERE\s+(?P<where>.+?))?"
        r"(?:\s+ORDER\s+BY\s+(?P<order>[\w\s,]+?))?"
        r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
        re.IGNORECASE | re.DOTALL,
    )
    _TOKEN = re.compile(
        r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)|(?P<op>>=|<=|!=|=|<|>|\(|\)|,)"
        r"|(?P<word>[\w.]+))",
    )

    def run_soql(self, soql: str) -> list[dict[str, Any]]:
        m = self._SELECT.match(soql)
        if not m:
            raise ValueError(f"unexpected query: {soql}")
        fields = [f.strip() for f in m["fields"].split(",")]
        obj = m["obj"]
        if obj not in ("Case", "CaseComment"):
            raise ValueError(f"sObject type '{obj}' is not supported")
        rows = list(self._table(obj).values())
        if m["where"]:
            conditions = self._parse_where(m["where"])
            rows = [r for r in rows if all(self._test(r, c) for c in conditions)]
        if m["order"]:
            keys = [k.split()[0] for k in m["order"].split(",")]
            rows.sort(key=lambda r: tuple(str(r.get(k) or "") for k in keys))
        if m["limit"]:
            rows = rows[: int(m["limit"])]
        out = []
        for r in rows:
            rec = {"attributes": copy.deepcopy(r["attributes"])}
            for f in fields:
                if f not in r:
                    raise ValueError(f"No such column '{f}' on entity '{obj}'")
                rec[f] = r[f]
            out.append(rec)
        return out

    def _parse_where(self, where: str) -> list[tuple[str, str, Any]]:
        tokens: list[tuple[str, Any]] = []
        pos = 0
        while pos < len(where):
            t = self._TOKEN.match(where, pos)
            if not t or t.end() == pos:
                if where[pos:].strip() == "":
                    break
                raise ValueError(f"unexpected token near {where[pos : pos + 20]!r}")
            pos = t.end()
            if t["str"] is not None:
                raw = t["str"][1:-1]
                unescaped = re.sub(r"\\(.)", lambda mm: {"n": "\n", "r": "\r"}.get(mm[1], mm[1]), raw)
                tokens.append(("value", unescaped))
            elif t["dt"] is not None:
                tokens.append(("value", datetime.strptime(t["dt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)))
            elif t["op"] is not None:
                tokens.append(("op", t["op"]))
            elif t["word"] is not None:
                w = t["word"]
                if w.lower() in ("true", "false"):
                    tokens.append(("value", w.lower() == "true"))
                elif w.lower() == "null":
                    tokens.append(("value", None))
                else:
                    tokens.append(("word", w))
        conditions: list[tuple[str, str, Any]] = []
        i = 0
        while i < len(tokens):
            kind, name = tokens[i]
            if kind != "word":
                raise ValueError(f"expected a field name, got {name!r}")
            op_kind, op = tokens[i + 1]
            if op_kind == "word" and str(op).upper() == "IN":
                values = []
                j = i + 3
                while tokens[j] != ("op", ")"):
                    if tokens[j][0] == "value":
                        values.append(tokens[j][1])
                    j += 1
                conditions.append((name, "IN", values))
                i = j + 1
            elif op_kind == "word" and str(op).upper() == "LIKE":
                conditions.append((name, "LIKE", tokens[i + 2][1]))
                i += 3
            elif op_kind == "op":
                conditions.append((name, op, tokens[i + 2][1]))
                i += 3
            else:
                raise ValueError(f"unexpected operator {op!r}")
            if i < len(tokens):
                if tokens[i] != ("word", "AND") and tokens[i] != ("word", "and"):
                    raise ValueError("only AND is supported")
                i += 1
        return conditions

    @staticmethod
    def _test(row: dict[str, Any], cond: tuple[str, str, Any]) -> bool:
        name, op, value = cond
        have = row.get(name)
        if isinstance(value, datetime):
            if have is None:
                return False
            have = datetime.strptime(have, SF_TIME.replace(".000+0000", ".%f%z"))
        if op == "=":
            return bool(have == value)
        if op == "!=":
            return bool(have != value)
        if op == "IN":
            return have in value
        if op == "LIKE":
            pattern = "^" + ".*".join(re.escape(p) for p in str(value).split("%")) + "$"
            return have is not None and re.match(pattern, str(have), re.IGNORECASE | re.DOTALL) is not None
        if op in (">=", ">", "<=", "<"):
            if have is None:
                return False
            return {">=": have >= value, ">": have > value, "<=": have <= value, "<": have < value}[op]
        raise ValueError(op)
