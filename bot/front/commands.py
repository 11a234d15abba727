"""The `/automation` command: text → admin service calls → reply text. Platform-independent.

Slack and Telegram only pass the text after `/automation`, say whether the caller is an admin,
and post the reply. All the wording of the chat front-end lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import Action, ActionType, AutomationRevision, Topic
from bot.engine.normalize import PLAIN_QUOTES
from bot.errors import (
    InboxError,
    Invalid,
    Missing,
    NotFound,
    RevisionNotFound,
    TurnedOff,
    UnknownLabel,
    UnknownTeam,
)
from bot.i18n import wording
from bot.services.admin import LABEL_KINDS, Admin, plan_problem

NOT_ADMIN = "Only inbox admins can manage automations."

HELP = """\
/automation list — all automations
/automation show NAME — one automation (NAME quoted, or #ID)
/automation create NAME keywords="k1, k2" [match=any|all] [tags="t1, t2"] [topics="t1"]
    [resolve] [reason="R"] [crm=salesforce] [channels=c1,c2] [types=direct,group,public]
/automation enable NAME · disable NAME · delete NAME
/automation history NAME — its last changes, who made them · rollback NAME REV — put revision REV back
/automation test "message text" [channel=NAME] [type=TYPE] — what would fire; changes nothing
/automation tags [add NAME | delete NAME] · topics [...] · reasons [...]
/automation topics add NAME [priority=urgent|high|normal|low] [team=TEAM]
/automation topics set NAME [priority=…] [team=TEAM | team=none] — its open conversations follow"""

CREATE_OPTIONS = ("keywords", "match", "tags", "topics", "reason", "crm", "channels", "types", "resolve")
MISSING_NAME = 'give the automation a name, e.g. /automation create "Au revoir" keywords="au revoir, bye" resolve'
# What to say when a required value is missing, by (what it belongs to, field).
MISSING: dict[tuple[str, str | None], str] = {
    ("automation", "name"): MISSING_NAME,
    ("automation", "keywords"): 'keywords: give at least one keyword, e.g. keywords="au revoir, bye"',
    ("automation", "actions"): "give at least one action: tags=…, topics=…, resolve or crm=salesforce",
    ("test", "text"): 'give the message to test, e.g. /automation test "Au revoir !"',
}


def describe(exc: InboxError) -> str:
    """An error of the service, in the chat's words (the way out is a chat command)."""
    match exc:
        case Missing(of=of, field=field) if (of, field) in MISSING:
            return MISSING[of, field]
        case Missing(of=of, field="name") if of in LABEL_KINDS:  # a tag's, topic's or reason's name
            k = LABEL_KINDS[of]
            return f"give the {k.noun}'s name, e.g. /automation {k.plural} add billing"
        case UnknownLabel(kind=kind, name=name):
            k = LABEL_KINDS[kind]
            return f'unknown {k.noun} "{name}" — create it with /automation {k.plural} add {name}'
        case RevisionNotFound(automation_id=aid, revision=n):
            return wording(None)("#{id} has no revision {n} — see /automation history #{id}", id=aid, n=n)
        case NotFound(what="automation"):
            return f"no automation {exc.shown} — see /automation list"
        case NotFound(what=what, ref=ref) if what in LABEL_KINDS:
            k = LABEL_KINDS[what]
            return f'unknown {k.noun} "{ref}" — see /automation {k.plural}'
        case UnknownTeam(name=name):
            return f'unknown team "{name}" — create it first (POST /api/teams), then send this again'
        case TurnedOff(in_action=True):
            return f"{exc}; resolve without reason= or turn them on"
    return str(exc)


def _usage(detail: str) -> Invalid:
    """A command that does not follow the grammar (see HELP)."""
    return Invalid("command", detail)


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    quoted: bool  # the whole token (or its value after `=`) was quoted
    opened: bool = False  # the token itself began with a quote: one quoted string, never key=value


def tokenize(text: str) -> list[Token]:
    """Split on spaces outside quotes. "…" and '…' quote when they open a token or a `key=` value;
    an apostrophe inside a word is literal (don't). Typographic quotes count as plain ones."""
    text = text.translate(PLAIN_QUOTES)
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        buf: list[str] = []
        quoted = False
        opened = text[i] in "\"'"
        while i < n and not text[i].isspace():
            ch = text[i]
            at_value = not buf or (buf and buf[-1] == "=" and "=" not in "".join(buf[:-1]))
            if ch in "\"'" and at_value:
                end = i + 1
                chunk: list[str] = []
                while end < n and text[end] != ch:
                    if ch == '"' and text[end] == "\\" and end + 1 < n:
                        end += 1
                    chunk.append(text[end])
                    end += 1
                if end >= n:
                    raise _usage(f"a quote ({ch}) is not closed — close it and send again")
                buf.extend(chunk)
                quoted = True
                i = end + 1
                continue
            buf.append(ch)
            i += 1
        tokens.append(Token("".join(buf), quoted, opened))
    return tokens


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _q(s: str) -> str:
    return f'"{s}"'


def _keywords(keywords: Sequence[str]) -> str:
    """Keywords as written in a command: a phrase holding a comma is quoted."""
    return ", ".join(_q(k) if "," in k else k for k in keywords)


TOPIC_OPTIONS = ("priority", "team")


def _topic_options(args: list[Token]) -> tuple[str, dict[str, str]]:
    """`NAME [priority=…] [team=…]`: the name (it may span several words) and the options."""
    name_parts: list[str] = []
    opts: dict[str, str] = {}
    for tok in args:
        key, sep, value = tok.text.partition("=")
        if sep and not tok.opened and key.lower() in TOPIC_OPTIONS:
            if key.lower() in opts:
                raise _usage(f'"{key.lower()}" is given twice')
            opts[key.lower()] = value
        elif opts:
            raise _usage(f'unexpected "{tok.text}" — put the name first, then priority=… and team=…')
        else:
            name_parts.append(tok.text)
    return " ".join(name_parts), opts


def _team_option(opts: dict[str, str]) -> str | None:
    """`team=Billing`; `team=none` (or empty): no team."""
    team = opts.get("team")
    return None if team is None or team.strip().lower() in ("", "none") else team


def _topic_line(t: Topic) -> str:
    """`Refunds · high · team Billing`."""
    return f"{t.name} · {t.priority.value}" + (f" · team {t.team}" if t.team else "")


def _routing(t: Topic) -> str:
    """`high, team Billing`; `normal, no team`."""
    return f"{t.priority.value}, " + (f"team {t.team}" if t.team else "no team")


def describe_actions(actions: list[Action] | tuple[Action, ...]) -> str:
    parts: list[str] = []
    tags = [a.value for a in actions if a.type is ActionType.TAG and a.value]
    topics = [a.value for a in actions if a.type is ActionType.TOPIC and a.value]
    if tags:
        parts.append("tag " + ", ".join(map(_q, tags)))
    if topics:
        parts.append("topic " + ", ".join(map(_q, topics)))
    for a in actions:
        if a.type is ActionType.RESOLVE:
            parts.append(f"resolve (reason {_q(a.value)})" if a.value else "resolve")
        elif a.type is ActionType.CRM:
            parts.append(f"send to {a.value or 'salesforce'}")
    return ", ".join(parts)


HISTORY_LINES = 5


def _revision_line(r: AutomationRevision) -> str:
    """`3 · 2026-12-01 10:02 UTC · updated by slack:U1 — any of bye, ciao → tag "closing" · enabled`."""
    _ = wording(None)
    a = r.automation
    at = r.at.strftime("%Y-%m-%d %H:%M UTC")
    change = {
        "created": _("created"),
        "updated": _("updated"),
        "enabled": _("enabled"),
        "disabled": _("disabled"),
        "deleted": _("deleted"),
        "rolled_back": _("rolled back"),
    }[r.change.value]
    actions = describe_actions(tuple(Action.from_json(x) for x in a.get("actions", ())))
    state = _("enabled") if a.get("enabled") else _("disabled")
    return _(
        "{revision} · {at} · {change} by {by} — {match} of {keywords} → {actions} · {state}",
        revision=r.revision,
        at=at,
        change=change,
        by=r.by,
        match=a.get("match", "any"),
        keywords=_keywords(a.get("keywords", ())),
        actions=actions,
        state=state,
    )


class CommandRunner:
    """Runs one `/automation …` command for a caller and returns the reply text."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    async def run(self, text: str, *, is_admin: bool, actor: str) -> str:
        if not is_admin:
            return NOT_ADMIN
        if "\x00" in text:  # the store cannot hold it (PostgreSQL)
            return "the command holds a NUL character — remove it and send again"
        try:
            tokens = tokenize(text.strip())
            if tokens and tokens[0].text.lower() in ("/automation", "automation") and not tokens[0].quoted:
                tokens = tokens[1:]
            if not tokens:
                return HELP
            sub, args = tokens[0].text.lower(), tokens[1:]
            handler = getattr(self, f"_cmd_{sub}", None)
            if handler is None or tokens[0].quoted:
                return f'unknown subcommand "{tokens[0].text}" — try /automation help'
            result: str = await handler(args, actor)
            return result
        except InboxError as exc:
            return describe(exc)

    # --- subcommands -------------------------------------------------------------------------
    async def _cmd_help(self, args: list[Token], actor: str) -> str:
        return HELP

    async def _cmd_list(self, args: list[Token], actor: str) -> str:
        automations = await self.admin.list_automations()
        if not automations:
            return 'No automations yet. Create one: /automation create "Au revoir" keywords="au revoir, bye" resolve'
        lines = []
        for a in automations:
            problem = plan_problem(a, self.admin.settings)
            state = "enabled" if a.enabled else "disabled"
            line = (
                f"#{a.id} {_q(a.name)} — {a.match} of: {_keywords(a.keywords)} → "
                f"{describe_actions(a.actions)} · {state}"
            )
            if problem:
                line += f" · ⚠ skipped: {describe(problem)}"
            lines.append(line)
        return "\n".join(lines)

    def _name(self, args: list[Token], what: str) -> str:
        if not args:
            raise _usage(f'name the automation to {what}, e.g. /automation {what} "Au revoir" or #3')
        if len(args) > 1 and not args[0].quoted:
            return " ".join(t.text for t in args)  # unquoted multi-word name
        if len(args) > 1:
            raise _usage(f"unexpected {_q(args[1].text)} after the name — see /automation help")
        return args[0].text

    async def _cmd_show(self, args: list[Token], actor: str) -> str:
        a = await self.admin.find(self._name(args, "show"))
        problem = plan_problem(a, self.admin.settings)
        lines = [
            f"#{a.id} {_q(a.name)} ({'enabled' if a.enabled else 'disabled'})",
            f"keywords ({a.match}): {_keywords(a.keywords)}",
            f"actions: {describe_actions(a.actions)}",
            f"channels: {', '.join(a.channels) or 'all'} · types: {', '.join(a.types) or 'all'}",
        ]
        if problem:
            lines.append(f"⚠ skipped at run time: {describe(problem)}")
        return "\n".join(lines)

    async def _cmd_create(self, args: list[Token], actor: str) -> str:
        def is_option(tok: Token) -> bool:
            if tok.opened:
                return False
            return "=" in tok.text or (tok.text.lower() == "resolve" and not tok.quoted)

        if not args or is_option(args[0]):
            raise Missing("name", of="automation")
        rest = list(args)
        name_parts = [rest.pop(0).text]
        # An unquoted name may span several words, up to the first option (whose value may be quoted).
        while rest and not args[0].opened and not is_option(rest[0]):
            name_parts.append(rest.pop(0).text)
        name = " ".join(name_parts)
        opts: dict[str, str] = {}
        resolve = False
        for tok in rest:
            if tok.text.lower() == "resolve" and not tok.quoted:
                resolve = True
                continue
            key, sep, value = tok.text.partition("=")
            key = key.lower()
            if not sep or tok.opened:
                raise _usage(f'unexpected "{tok.text}" — options are written key=value; see /automation help')
            if key not in CREATE_OPTIONS or key == "resolve":
                raise _usage(f'unknown option "{key}" — see /automation help')
            if key in opts:
                raise _usage(f'"{key}" is given twice')
            opts[key] = value
        actions: list[dict[str, str | None]] = []
        actions += [{"type": "tag", "tag": t} for t in _split_list(opts.get("tags", ""))]
        actions += [{"type": "topic", "topic": t} for t in _split_list(opts.get("topics", ""))]
        if "tags" in opts and not _split_list(opts["tags"]):
            raise _usage('tags= is empty — e.g. tags="closing"')
        if resolve or opts.get("reason"):
            actions.append({"type": "resolve", "reason": opts.get("reason") or None})
        if "crm" in opts:
            actions.append({"type": "crm", "target": opts["crm"]})
        data = {
            "name": name,
            "keywords": opts.get("keywords"),
            "match": opts.get("match", "any").lower(),
            "actions": actions,
            "channels": _split_list(opts.get("channels", "")),
            "types": _split_list(opts.get("types", "")),
        }
        a = await self.admin.create(data, actor=actor)
        scope = []
        if a.channels:
            scope.append("channels " + ", ".join(a.channels))
        if a.types:
            scope.append("types " + ", ".join(a.types))
        return (
            f"Created automation #{a.id} {_q(a.name)}: when a message holds {a.match} of "
            f"{', '.join(map(_q, a.keywords))} → {describe_actions(a.actions)}"
            + (f" (only {'; '.join(scope)})" if scope else "")
            + ". Enabled."
        )

    async def _cmd_enable(self, args: list[Token], actor: str) -> str:
        a, changed = await self.admin.set_enabled(self._name(args, "enable"), True, actor=actor)
        return f"Enabled automation #{a.id} {_q(a.name)}." if changed else f"#{a.id} {_q(a.name)} is already enabled."

    async def _cmd_disable(self, args: list[Token], actor: str) -> str:
        a, changed = await self.admin.set_enabled(self._name(args, "disable"), False, actor=actor)
        return f"Disabled automation #{a.id} {_q(a.name)}." if changed else f"#{a.id} {_q(a.name)} is already disabled."

    async def _cmd_delete(self, args: list[Token], actor: str) -> str:
        a = await self.admin.delete(self._name(args, "delete"), actor=actor)
        return f"Deleted automation #{a.id} {_q(a.name)}. Its past runs are kept."

    async def _cmd_history(self, args: list[Token], actor: str) -> str:
        """The last few revisions, newest first. `#ID` also finds a deleted automation's."""
        _ = wording(None)
        ref = self._name(args, "history").strip()
        digits = ref[1:]
        if ref.startswith("#") and digits.isascii() and digits.isdigit() and len(digits) < 10:
            automation_id = int(digits)
        else:
            automation_id = (await self.admin.find(ref)).id
        found = await self.admin.revisions(automation_id, limit=HISTORY_LINES)
        newest = found[0].automation
        lines = [_("History of #{id} {name}, newest first:", id=automation_id, name=_q(str(newest.get("name"))))]
        lines += [_revision_line(r) for r in found]
        if found[0].change != "deleted":
            lines.append(_("Put one back: /automation rollback #{id} REV", id=automation_id))
        return "\n".join(lines)

    async def _cmd_rollback(self, args: list[Token], actor: str) -> str:
        _ = wording(None)
        last = args[-1].text if args else ""
        if len(args) < 2 or not (last.isascii() and last.isdigit()) or len(last) > 9:
            raise _usage(_('name the automation and the revision, e.g. /automation rollback "Au revoir" 2'))
        a = await self.admin.rollback(self._name(args[:-1], "rollback"), int(last), actor=actor)
        state = _("enabled") if a.enabled else _("disabled")
        return _(
            "Rolled #{id} {name} back to revision {old} (now revision {new}): {match} of {keywords} → {actions}. "
            "It stays {state}.",
            id=a.id,
            name=_q(a.name),
            old=last,
            new=a.revision,
            match=a.match.value,
            keywords=_keywords(a.keywords),
            actions=describe_actions(a.actions),
            state=state,
        )

    async def _cmd_test(self, args: list[Token], actor: str) -> str:
        if not args:
            raise _usage('give the message to test, e.g. /automation test "Au revoir !"')
        text_parts: list[str] = []
        opts: dict[str, str] = {}
        for tok in args:
            key, sep, value = tok.text.partition("=")
            if sep and not tok.opened and key.lower() in ("channel", "type"):
                opts[key.lower()] = value
            elif opts:
                raise _usage(f'unexpected "{tok.text}" — quote the message: /automation test "…"')
            else:
                text_parts.append(tok.text)
        result = await self.admin.test(" ".join(text_parts), channel=opts.get("channel"), type=opts.get("type"))
        ev = result.evaluation
        lines = []
        if not ev.firings:
            lines.append("Nothing would fire.")
        for f in ev.firings:
            lines.append(
                f"#{f.rule.id} {_q(f.rule.name)} would fire on {', '.join(map(_q, f.keywords))} → "
                f"{describe_actions(f.actions) or 'nothing'}"
            )
        for name, why in result.skipped:
            lines.append(f"{_q(name)} is skipped: {describe(why)}")
        lines.append("(test only — nothing was changed)")
        return "\n".join(lines)

    async def _labels(self, kind: str, args: list[Token], actor: str) -> str:
        what, cmd = LABEL_KINDS[kind].noun, LABEL_KINDS[kind].plural
        plural = what.capitalize() + "s"  # Tags, Topics, Resolution reasons
        if not args:
            names = await self.admin.list_labels(kind)
            if not names:
                return f"No {plural.lower()} yet — add one with /automation {cmd} add NAME"
            return f"{plural}: " + ", ".join(names)
        verb = args[0].text.lower()
        name = " ".join(t.text for t in args[1:])
        if verb == "add":
            added = await self.admin.add_label(kind, name, actor=actor)
            return f"Added {what} {_q(added)}."
        if verb in ("delete", "remove"):
            if not name.strip():
                raise _usage(f"name the {what} to delete, e.g. /automation {cmd} delete NAME")
            deleted = await self.admin.delete_label(kind, name, actor=actor)
            return f"Deleted {what} {_q(deleted)}."
        raise _usage(f'unknown "{args[0].text}" — use /automation {cmd}, {cmd} add NAME or {cmd} delete NAME')

    async def _cmd_tags(self, args: list[Token], actor: str) -> str:
        return await self._labels("tag", args, actor)

    async def _cmd_topics(self, args: list[Token], actor: str) -> str:
        verb = args[0].text.lower() if args else ""
        if not args:
            topics = await self.admin.list_topics()
            if not topics:
                return "No topics yet — add one with /automation topics add NAME [priority=high] [team=TEAM]"
            return "Topics:\n" + "\n".join(_topic_line(t) for t in topics)
        if verb == "add":
            name, opts = _topic_options(args[1:])
            topic = await self.admin.add_topic(
                name, priority=opts.get("priority"), team=_team_option(opts), actor=actor
            )
            return f"Added topic {_q(topic.name)} ({_routing(topic)})."
        if verb == "set":
            name, opts = _topic_options(args[1:])
            if not name:
                raise _usage("name the topic to change, e.g. /automation topics set Refunds priority=high")
            if not opts:
                raise _usage(f"say what to change, e.g. /automation topics set {name} priority=high team=Billing")
            team = _team_option(opts) if "team" in opts else ...
            topic = await self.admin.change_topic(name, priority=opts.get("priority"), team=team, actor=actor)
            return f"Topic {_q(topic.name)} is now {_routing(topic)}; its open conversations follow."
        if verb in ("delete", "remove"):
            return await self._labels("topic", args, actor)
        raise _usage(
            f'unknown "{args[0].text}" — use /automation topics, topics add NAME, topics set NAME or topics delete NAME'
        )

    async def _cmd_reasons(self, args: list[Token], actor: str) -> str:
        return await self._labels("reason", args, actor)
