"""What each plan allows. Pure: no IO."""

from __future__ import annotations

from collections.abc import Iterable

from bot.config import OrganizationSettings
from bot.domain import Action, ActionType

_NEEDS = {
    ActionType.TAG: "business",
    ActionType.TOPIC: "enterprise",
    ActionType.RESOLVE: "enterprise",
    ActionType.CRM: "enterprise with advanced_inbox = true",
}


def refusal(org: OrganizationSettings, actions: Iterable[Action]) -> str | None:
    """Why the organization's plan cannot run these actions, or None when it can.

    The message names the plan needed, e.g. `plan "business" does not include resolve (needs enterprise)`.
    """
    for action in actions:
        t = action.type
        if t in (ActionType.TOPIC, ActionType.RESOLVE) and org.plan == "business":
            return f'plan "{org.plan}" does not include {t.value} (needs {_NEEDS[t]})'
        if t is ActionType.CRM and not (org.plan == "enterprise" and org.advanced_inbox):
            label = org.plan + (" without advanced_inbox" if org.plan == "enterprise" else "")
            return f'plan "{label}" does not include crm (needs {_NEEDS[t]})'
        if t is ActionType.RESOLVE and action.value and not org.resolution_reasons:
            return (
                "resolution reasons are turned off (resolution_reasons = false in [organization]); "
                "resolve without reason= or turn them on"
            )
    return None
