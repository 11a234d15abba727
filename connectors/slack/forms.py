"""Block Kit for the chat forms: the "new automation" modal, the list with buttons, and reading a
submitted modal back. Pure: no IO (https://api.slack.com/reference/block-kit).

Every text here is plain_text, never mrkdwn: names and keywords are shown as typed, and nothing an
admin typed can format or link. Button values carry `<id>:<version>`, never a name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.front.chat_forms import FIELDS, HINTS, LABELS, TYPE_LABELS, Choices, Item, Submission
from bot.i18n import Wording

CREATE_VIEW = "automation_create"
ACTION_PREFIX = "automation_"
LIST_ACTIONS = ("automation_enable", "automation_disable", "automation_delete")
VALUE = "value"  # the action_id of every input's element: the block id names the field
MAX_OPTIONS = 100  # a select holds at most 100 options
MAX_LISTED = 24  # 50 blocks per message: a section and a row of buttons each, and a line to spare
TEXT_MAX = 75  # button and option texts


def _plain(text: str, limit: int | None = None) -> dict[str, Any]:
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text, "emoji": True}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": _plain(text, TEXT_MAX), "value": value}


def _input(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool, hint: str | None = None
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label, 2000),
        "element": {**element, "action_id": VALUE},
        "optional": optional,
    }
    if hint:
        block["hint"] = _plain(hint, 2000)
    return block


def _note(block_id: str, text: str) -> dict[str, Any]:
    return {"type": "section", "block_id": block_id, "text": _plain(text, 3000)}


def _multi(names: Sequence[str], placeholder: str) -> dict[str, Any]:
    return {
        "type": "multi_static_select",
        "placeholder": _plain(placeholder, 150),
        "options": [_option(n, n) for n in names[:MAX_OPTIONS]],
    }


def create_modal(choices: Choices, _: Wording, *, metadata: str = "") -> dict[str, Any]:
    """The web form's fields as a modal; options the plan lacks are shown, marked unavailable."""
    blocks: list[dict[str, Any]] = [
        _input("name", _(LABELS["name"]), {"type": "plain_text_input", "max_length": 100}, optional=False),
    ]
    any_, all_ = _option(_("Any keyword"), "any"), _option(_("All keywords"), "all")
    blocks.append(
        _input(
            "match",
            _(LABELS["match"]),
            {"type": "radio_buttons", "options": [any_, all_], "initial_option": any_},
            optional=False,
        )
    )
    blocks.append(
        _input(
            "keywords", _(LABELS["keywords"]), {"type": "plain_text_input"}, optional=False, hint=_(HINTS["keywords"])
        )
    )
    pick = _("Pick some")
    for fld, names, add in (
        ("tags", choices.tags, "/automation tags add NAME"),
        ("topics", choices.topics, "/automation topics add NAME"),
    ):
        if fld in choices.unavailable:
            blocks.append(_note(fld, _("{label}: {why}", label=_(LABELS[fld]), why=choices.unavailable[fld])))
        elif names:
            blocks.append(_input(fld, _(LABELS[fld]), _multi(names, pick), optional=True))
        else:
            blocks.append(
                _note(fld, _("{label}: none yet — add one with {command}", label=_(LABELS[fld]), command=add))
            )
    if "resolve" in choices.unavailable:
        blocks.append(
            _note("resolve", _("{label}: {why}", label=_(LABELS["resolve"]), why=choices.unavailable["resolve"]))
        )
    else:
        resolve = {"type": "checkboxes", "options": [_option(_(LABELS["resolve"]), "resolve")]}
        blocks.append(_input("resolve", _("Resolve"), resolve, optional=True))
    if "reason" in choices.unavailable:
        if "resolve" not in choices.unavailable:
            blocks.append(
                _note("reason", _("{label}: {why}", label=_(LABELS["reason"]), why=choices.unavailable["reason"]))
            )
    elif choices.reasons:
        reason = {
            "type": "static_select",
            "placeholder": _plain(_("No reason"), 150),
            "options": [_option(n, n) for n in choices.reasons[:MAX_OPTIONS]],
        }
        blocks.append(_input("reason", _(LABELS["reason"]), reason, optional=True))
    if "crm" in choices.unavailable:
        blocks.append(_note("crm", _("{label}: {why}", label=_(LABELS["crm"]), why=choices.unavailable["crm"])))
    else:
        crm = {"type": "checkboxes", "options": [_option(_(LABELS["crm"]), "salesforce")]}
        blocks.append(_input("crm", _("Salesforce"), crm, optional=True))
    if choices.channels:
        blocks.append(
            _input(
                "channels",
                _(LABELS["channels"]),
                _multi(choices.channels, pick),
                optional=True,
                hint=_(HINTS["channels"]),
            )
        )
    types = {"type": "checkboxes", "options": [_option(_(TYPE_LABELS[t]), t.value) for t in choices.types]}
    blocks.append(_input("types", _(LABELS["types"]), types, optional=True, hint=_(HINTS["types"])))
    return {
        "type": "modal",
        "callback_id": CREATE_VIEW,
        "title": _plain(_("New automation"), 24),
        "submit": _plain(_("Save"), 24),
        "close": _plain(_("Cancel"), 24),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def message_modal(title: str, text: str, close: str) -> dict[str, Any]:
    """A modal that only says something (after a save, or a refusal)."""
    return {
        "type": "modal",
        "title": _plain(title, 24),
        "close": _plain(close, 24),
        "blocks": [_note("message", text)],
    }


def _selected(state: Mapping[str, Any], block: str) -> list[str]:
    element = state.get(block, {}).get(VALUE) or {}
    options = element.get("selected_options") or []
    return [str(o.get("value")) for o in options if isinstance(o, Mapping) and o.get("value") is not None]


def submission(view: Mapping[str, Any]) -> Submission:
    """A submitted modal's values (`view.state.values`) as a form submission."""
    state = (view.get("state") or {}).get("values") or {}

    def text(block: str) -> str:
        value = (state.get(block, {}).get(VALUE) or {}).get("value")
        return str(value) if value is not None else ""

    def one(block: str) -> str | None:
        option = (state.get(block, {}).get(VALUE) or {}).get("selected_option")
        return str(option["value"]) if isinstance(option, Mapping) and option.get("value") is not None else None

    return Submission(
        name=text("name"),
        match=one("match") or "any",
        keywords=text("keywords"),
        tags=_selected(state, "tags"),
        topics=_selected(state, "topics"),
        resolve=bool(_selected(state, "resolve")),
        reason=one("reason"),
        crm=bool(_selected(state, "crm")),
        channels=_selected(state, "channels"),
        types=_selected(state, "types"),
    )


def input_blocks(view: Mapping[str, Any]) -> set[str]:
    """The block ids of the modal's inputs: the only ones Slack shows an error under."""
    return {str(b.get("block_id")) for b in view.get("blocks") or [] if b.get("type") == "input"}


def field_errors(errors: Mapping[str, str], inputs: set[str]) -> dict[str, str]:
    """Errors by block id; one for a field that has no input (a note, say) goes to the nearest
    input before it, else to the name."""
    out: dict[str, str] = {}
    for fld, message in errors.items():
        block = fld
        if block not in inputs:
            before = [f for f in FIELDS[: FIELDS.index(fld)] if f in inputs] if fld in FIELDS else []
            block = before[-1] if before else "name"
        out[block] = message[:2000]
    return out


def list_blocks(items: Sequence[Item], _: Wording, *, note: str | None = None) -> list[dict[str, Any]]:
    """Each automation's line, then its buttons: Enable or Disable, and Delete with a confirm dialog."""
    blocks: list[dict[str, Any]] = []
    if note:
        blocks.append({"type": "context", "elements": [_plain(note, 2000)]})
    if not items:
        blocks.append(
            _note(
                "empty",
                _('No automations yet. Create one: /automation create "Au revoir" keywords="au revoir, bye" resolve'),
            )
        )
        return blocks
    for item in items[:MAX_LISTED]:
        value = f"{item.id}:{item.version}"
        toggle = "disable" if item.enabled else "enable"
        toggle_text = _("Disable") if item.enabled else _("Enable")
        delete_text = _("Delete")
        blocks.append(_note(f"automation_{item.id}", item.line))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"automation_{item.id}_buttons",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACTION_PREFIX + toggle,
                        "text": _plain(toggle_text, TEXT_MAX),
                        "value": value,
                        "accessibility_label": _("{verb} {name}", verb=toggle_text, name=item.name)[:TEXT_MAX],
                    },
                    {
                        "type": "button",
                        "action_id": ACTION_PREFIX + "delete",
                        "text": _plain(delete_text, TEXT_MAX),
                        "value": value,
                        "style": "danger",
                        "accessibility_label": _("{verb} {name}", verb=delete_text, name=item.name)[:TEXT_MAX],
                        "confirm": {
                            "title": _plain(_("Delete the automation?"), 100),
                            "text": _plain(
                                _(
                                    'Delete automation #{id} "{name}"? Its past runs are kept.',
                                    id=item.id,
                                    name=item.name,
                                ),
                                300,
                            ),
                            "confirm": _plain(delete_text, 30),
                            "deny": _plain(_("Cancel"), 30),
                            "style": "danger",
                        },
                    },
                ],
            }
        )
    if len(items) > MAX_LISTED:
        more = len(items) - MAX_LISTED
        blocks.append(
            {"type": "context", "elements": [_plain(_("…and {n} more: /automation show NAME or #ID", n=more))]}
        )
    return blocks


def parse_value(value: object) -> tuple[int, int] | None:
    """A button's `<id>:<version>`; None when it is not one of ours."""
    if not isinstance(value, str):
        return None
    ident, _sep, version = value.partition(":")
    if not (ident.isascii() and ident.isdigit() and version.isascii() and version.isdigit()):
        return None
    if len(ident) > 18 or len(version) > 20:
        return None
    return int(ident), int(version)
