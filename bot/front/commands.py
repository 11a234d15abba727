"""The `/automation` command: text → admin service calls → reply text. Platform-independent.

Slack and Telegram only pass the text after `/automation`, say whether the caller is an admin,
and post the reply. All the wording of the chat front-end lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.domain import Action, ActionType, Automation, Topic
from bot.engine.lint import Kind as LintKind
from bot.engine.lint import Warning as LintWarning
from bot.engine.normalize import PLAIN_QUOTES
from bot.engine.rules import Rule
from bot.engine.why import NOT_FIRST, Outcome, WhyEntry
from bot.errors import InboxError, Invalid, Missing, NotFound, TurnedOff, UnknownLabel, UnknownTeam
from bot.i18n import Wording, plural, wording
from bot.services.admin import LABEL_KINDS, Admin, plan_problem, rule_of
from bot.services.insight import Insight, parse_since

NOT_ADMIN = "Only inbox admins can manage automations."

HELP = """\
/automation list — all automations
/automation show NAME — one automation (NAME quoted, or #ID)
/automation create NAME keywords="k1, k2" [match=any|all] [tags="t1, t2"] [topics="t1"]
    [resolve] [reason="R"] [crm=salesforce] [channels=c1,c2] [types=direct,group,public]
/automation enable NAME · disable NAME · delete NAME
/automation test "message text" [channel=NAME] [type=TYPE] — what would fire; changes nothing
/automation preview NAME [since=7d|24h|ISO time] — what it would have done to past messages; changes nothing
    (or end /automation create … with the word preview: shown, not saved)
/automation why #CONVERSATION — what each automation did on each message, and why
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


class CommandRunner:
    """Runs one `/automation …` command for a caller and returns the reply text."""

    def __init__(self, admin: Admin, insight: Insight | None = None) -> None:
        self.admin = admin
        self.insight = insight if insight is not None else Insight(admin.settings, admin)
        self.language: str | None = None  # the replies' language (None: the default)

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

        preview = bool(args) and args[-1].text.lower() == "preview" and not args[-1].quoted and len(args) > 1
        if preview:
            args = args[:-1]
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
        if preview:
            return await self._preview(await self.admin.candidate(data), since=None, enabled=True)
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
            + await self._warnings_of(a)
        )

    async def _cmd_enable(self, args: list[Token], actor: str) -> str:
        a, changed = await self.admin.set_enabled(self._name(args, "enable"), True)
        said = f"Enabled automation #{a.id} {_q(a.name)}." if changed else f"#{a.id} {_q(a.name)} is already enabled."
        return said + await self._warnings_of(a)

    async def _cmd_disable(self, args: list[Token], actor: str) -> str:
        a, changed = await self.admin.set_enabled(self._name(args, "disable"), False)
        return f"Disabled automation #{a.id} {_q(a.name)}." if changed else f"#{a.id} {_q(a.name)} is already disabled."

    async def _cmd_delete(self, args: list[Token], actor: str) -> str:
        a = await self.admin.delete(self._name(args, "delete"))
        return f"Deleted automation #{a.id} {_q(a.name)}. Its past runs are kept."

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

    async def _labels(self, kind: str, args: list[Token]) -> str:
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
            added = await self.admin.add_label(kind, name)
            return f"Added {what} {_q(added)}."
        if verb in ("delete", "remove"):
            if not name.strip():
                raise _usage(f"name the {what} to delete, e.g. /automation {cmd} delete NAME")
            deleted = await self.admin.delete_label(kind, name)
            return f"Deleted {what} {_q(deleted)}."
        raise _usage(f'unknown "{args[0].text}" — use /automation {cmd}, {cmd} add NAME or {cmd} delete NAME')

    async def _cmd_tags(self, args: list[Token], actor: str) -> str:
        return await self._labels("tag", args)

    async def _cmd_topics(self, args: list[Token], actor: str) -> str:
        verb = args[0].text.lower() if args else ""
        if not args:
            topics = await self.admin.list_topics()
            if not topics:
                return "No topics yet — add one with /automation topics add NAME [priority=high] [team=TEAM]"
            return "Topics:\n" + "\n".join(_topic_line(t) for t in topics)
        if verb == "add":
            name, opts = _topic_options(args[1:])
            topic = await self.admin.add_topic(name, priority=opts.get("priority"), team=_team_option(opts))
            return f"Added topic {_q(topic.name)} ({_routing(topic)})."
        if verb == "set":
            name, opts = _topic_options(args[1:])
            if not name:
                raise _usage("name the topic to change, e.g. /automation topics set Refunds priority=high")
            if not opts:
                raise _usage(f"say what to change, e.g. /automation topics set {name} priority=high team=Billing")
            team = _team_option(opts) if "team" in opts else ...
            topic = await self.admin.change_topic(name, priority=opts.get("priority"), team=team)
            return f"Topic {_q(topic.name)} is now {_routing(topic)}; its open conversations follow."
        if verb in ("delete", "remove"):
            return await self._labels("topic", args)
        raise _usage(
            f'unknown "{args[0].text}" — use /automation topics, topics add NAME, topics set NAME or topics delete NAME'
        )

    async def _cmd_reasons(self, args: list[Token], actor: str) -> str:
        return await self._labels("reason", args)

    # --- why, preview, lint ---------------------------------------------------------------------
    async def _warnings_of(self, a: Automation) -> str:
        """The lint warnings of a saved automation, one line each under the reply ("" for none)."""
        lines = warning_lines(await self.insight.lint_saved(a), wording(self.language))
        return "".join("\n" + line for line in lines)

    async def _cmd_why(self, args: list[Token], actor: str) -> str:
        _ = wording(self.language)
        ref = args[0].text.removeprefix("#") if len(args) == 1 else ""
        if not (ref.isascii() and ref.isdigit() and len(ref) < 19):
            raise _usage(_("name the conversation by its number, e.g. /automation why #12"))
        conversation_id = int(ref)
        entries = await self.insight.why(conversation_id)
        if not entries:
            return _("No automation fired or found a keyword in conversation #{id}.", id=conversation_id)
        texts = dict(await self.insight.inbound_texts(conversation_id))
        lines = [_("Conversation #{id}, automation by automation:", id=conversation_id)]
        shown: int | None = None
        for e in entries:
            if e.message_id != shown:
                shown = e.message_id
                lines.append(
                    _("Message #{id}: {text}", id=e.message_id, text=_q(_excerpt(texts.get(e.message_id, ""))))
                )
            lines.append("  " + _why_line(e, _))
        return "\n".join(lines)

    async def _cmd_preview(self, args: list[Token], actor: str) -> str:
        _ = wording(self.language)
        since: str | None = None
        if args and not args[-1].opened and args[-1].text.lower().startswith("since="):
            since = args[-1].text.partition("=")[2]
            args = args[:-1]
        a = await self.admin.find(self._name(args, "preview"))
        return await self._preview(rule_of(a), since=since, enabled=a.enabled, name=a.name)

    async def _preview(self, rule: Rule, *, since: str | None, enabled: bool, name: str | None = None) -> str:
        _ = wording(self.language)
        start = parse_since(since, now=datetime.now(UTC))
        p = await self.insight.preview(rule, since=start, enabled=enabled)
        c = p.counts
        lines = [
            _(
                "Preview of {name} since {since} (nothing was changed):",
                name=_q(name or rule.name),
                since=start.strftime("%Y-%m-%d %H:%M UTC"),
            ),
            plural(_, "scanned {n} message", "scanned {n} messages", c.messages_scanned)
            + " · "
            + plural(_, "{n} conversation", "{n} conversations", p.conversations_scanned),
            plural(_, "would fire on {n} message", "would fire on {n} messages", c.would_fire_messages)
            + " · "
            + plural(_, "{n} conversation", "{n} conversations", c.would_fire_conversations),
            _(
                "would tag {tagged} · apply topics to {topics} · resolve {resolved} · send {crm} to Salesforce",
                tagged=c.would_tag,
                topics=c.would_apply_topics,
                resolved=c.would_resolve,
                crm=c.would_send_to_crm,
            ),
        ]
        for x in c.examples[:3]:
            lines.append(_("e.g. conversation #{id}: {text}", id=x.conversation_id, text=_q(_excerpt(x.text))))
        lines += warning_lines(p.warnings, _)
        return "\n".join(lines)


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _found(e: WhyEntry) -> str:
    return ", ".join(_q(f.keyword) for f in e.found)


def _why_line(e: WhyEntry, _: Wording) -> str:
    """One automation on one message, in a line."""
    who = f"#{e.automation_id} {_q(e.automation_name)}"
    match e.outcome:
        case Outcome.FIRED:
            line = _(
                "✓ {who} fired on {found} → {actions}", who=who, found=_found(e), actions=describe_actions(e.actions)
            )
            resolve = next((n for n in e.not_applied if n.type is ActionType.RESOLVE), None)
            if resolve is not None:
                line += " " + (
                    _("(resolve not applied: not the first message)")
                    if resolve.why == NOT_FIRST
                    else _("(resolve not applied: another automation resolved first)")
                )
            return line
        case Outcome.KEYWORDS_INCOMPLETE:
            return _(
                "✗ {who} found {found} but still misses {missing}",
                who=who,
                found=_found(e),
                missing=", ".join(map(_q, e.missing)),
            )
        case Outcome.NOT_IN_SCOPE:
            return _("✗ {who} found {found}, but the message is not in its scope", who=who, found=_found(e))
        case Outcome.SKIPPED_PLAN:
            return _("✗ {who} found {found}, but the plan does not allow it", who=who, found=_found(e))
    return _("✗ {who} found {found}, but it was disabled", who=who, found=_found(e))


def warning_lines(warnings: Sequence[LintWarning], _: Wording) -> list[str]:
    """Lint warnings in the chat's words, one line each."""
    lines = []
    for w in warnings:
        names = ", ".join(f"#{i} {_q(n)}" for i, n in zip(w.automation_ids, w.names, strict=True))
        match w.kind:
            case LintKind.GENERIC_RESOLVE_KEYWORD if w.share is not None:
                text = _(
                    "resolve keyword {keyword} is in {share} of recent first messages: it may close conversations "
                    "that have just begun",
                    keyword=_q(w.keyword or ""),
                    share=f"{w.share:.0%}",
                )
            case LintKind.GENERIC_RESOLVE_KEYWORD:
                text = _(
                    "resolve keyword {keyword} is a greeting or thanks: it may close conversations that have just "
                    "begun",
                    keyword=_q(w.keyword or ""),
                )
            case LintKind.DUPLICATE_KEYWORD:
                text = _("keyword {keyword} is in several automations of overlapping scope: {names}",
                         keyword=_q(w.keyword or ""), names=names)  # fmt: skip
            case LintKind.CONFLICT:
                text = _(
                    "keyword {keyword} resolves in one automation and sends to Salesforce in another: {names}",
                    keyword=_q(w.keyword or ""),
                    names=names,
                )
            case LintKind.UNKNOWN_CHANNEL:
                text = _(
                    "channel {channel} is not configured: the automation acts there once it is",
                    channel=_q(w.channel or ""),
                )
            case _:
                text = plural(
                    _, "enabled for {n} day without firing", "enabled for {n} days without firing", w.days or 0
                )
        lines.append("⚠ " + text)
    return lines
