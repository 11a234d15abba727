"""Salesforce REST records ↔ the CRM records of `connectors.base`, and SOQL literals. Pure: no IO.

Shapes: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_case.htm
and `…/sforce_api_objects_casecomment.htm`; recorded examples in tests/payloads/salesforce/.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import CaseDraft, CrmCase, CrmComment


def soql_quote(value: str) -> str:
    """A SOQL string literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def soql_datetime(dt: datetime) -> str:
    """A SOQL datetime literal (UTC, whole seconds)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_sf_datetime(value: str) -> datetime:
    """`2026-11-24T10:00:00.000+0000` (Salesforce's format) → aware datetime."""
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(value.replace("Z", "+0000"), fmt)
    raise ValueError(f"not a Salesforce datetime: {value!r}")


def _when(value: Any) -> datetime | None:
    return parse_sf_datetime(value) if isinstance(value, str) and value else None


def case_fields(draft: CaseDraft) -> dict[str, Any]:
    """A new Case's fields in Salesforce's names."""
    return {
        "Subject": draft.subject,
        "Description": draft.description,
        "Origin": draft.origin,
        "SuppliedName": draft.supplied_name,
    }


def case_from_record(record: Mapping[str, Any]) -> CrmCase:
    """A Case record (`Id`, `CaseNumber`, `Status`, `IsClosed`, `SystemModstamp`)."""
    number = record.get("CaseNumber")
    return CrmCase(
        id=str(record["Id"]),
        number=str(number) if number is not None else None,
        status=record.get("Status"),
        closed=bool(record.get("IsClosed")),
        modified_at=_when(record.get("SystemModstamp")),
    )


def comment_from_record(record: Mapping[str, Any], *, case_id: str | None = None) -> CrmComment:
    """A CaseComment record (`Id`, `ParentId`, `CommentBody`, `CreatedDate`); `case_id` when the
    query did not select `ParentId`."""
    return CrmComment(
        id=str(record["Id"]),
        case_id=str(record.get("ParentId") or case_id or ""),
        body=str(record.get("CommentBody") or ""),
        created_at=_when(record.get("CreatedDate")),
    )


def error_detail(content: Any) -> tuple[str | None, str | None]:
    """(errorCode, message) of a Salesforce error body (a list of errors, or text)."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0].get("errorCode"), str(content[0].get("message", ""))[:300]
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return None, str(content)[:300] if content else None


def chunks(items: Iterable[str], n: int) -> Iterable[list[str]]:
    """`items`, sorted, `n` at a time (SOQL statements have a length limit)."""
    ordered = sorted(items)
    for i in range(0, len(ordered), n):
        yield ordered[i : i + n]


__all__ = [
    "case_fields",
    "case_from_record",
    "chunks",
    "comment_from_record",
    "error_detail",
    "parse_sf_datetime",
    "soql_datetime",
    "soql_quote",
]
