"""What each plan and the organization's settings allow: the one place that gates features. Pure.

Every front-end and the rule cache ask here; a refusal is an error of `bot.errors` naming the
plan (or the setting) needed, which each front-end words.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.config import OrganizationSettings
from bot.domain import Action, ActionType
from bot.errors import Forbidden, PlanRefused, TurnedOff

_NEEDS = {
    ActionType.TAG: "business",
    ActionType.TOPIC: "enterprise",
    ActionType.RESOLVE: "enterprise",
    ActionType.CRM: "enterprise with advanced_inbox = true",
}


def _reasons_off(*, in_action: bool) -> TurnedOff:
    return TurnedOff(
        feature="resolution reasons", setting="resolution_reasons", section="organization", in_action=in_action
    )


def refusal(org: OrganizationSettings, actions: Iterable[Action]) -> Forbidden | None:
    """Why the organization cannot run these actions (an error naming the plan or the setting
    needed, not raised), or None when it can."""
    for action in actions:
        t = action.type
        if t in (ActionType.TOPIC, ActionType.RESOLVE) and org.plan == "business":
            return PlanRefused(feature=t.value, plan=org.plan, needs=_NEEDS[t])
        if t is ActionType.CRM and not (org.plan == "enterprise" and org.advanced_inbox):
            label = org.plan + (" without advanced_inbox" if org.plan == "enterprise" else "")
            return PlanRefused(feature=t.value, plan=label, needs=_NEEDS[t])
        if t is ActionType.RESOLVE and action.value and not org.resolution_reasons:
            return _reasons_off(in_action=True)
    return None


def require(org: OrganizationSettings, actions: Iterable[Action]) -> None:
    """Raise `refusal(org, actions)` when there is one."""
    why = refusal(org, actions)
    if why is not None:
        raise why


def require_reasons(org: OrganizationSettings) -> None:
    """Raise TurnedOff unless the organization uses resolution reasons (to add one, to resolve
    with one)."""
    if not org.resolution_reasons:
        raise _reasons_off(in_action=False)
