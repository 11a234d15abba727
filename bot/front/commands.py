"""The `/automation` command: text → admin service calls → reply text. Platform-independent.

Slack and Telegram only pass the text after `/automation`, say whether the caller is an admin,
which language to answer in, and post the reply. All the wording of the chat front-end lives here,
in the catalogue (`bot/i18n.py`): English, and French in `bot/locale/fr`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.domain import Action, ActionType, Automation, AutomationRevision, Topic
from bot.engine.lint import Kind as LintKind
from bot.engine.lint import Warning as LintWarning
from bot.engine.normalize import PLAIN_QUOTES
from bot.engine.rules import Rule
from bot.engine.why import NOT_FIRST, Outcome, WhyEntry
from bot.errors import (
    N_,
    InboxError,
    Invalid,
    Missing,
    NotFound,
    PlanRefused,
    RevisionNotFound,
    Term,
    TurnedOff,
    UnknownLabel,
    UnknownTeam,
)
from bot.i18n import Wording, plural, wording
from bot.services.admin import LABEL_KINDS, Admin, plan_problem, rule_of
from bot.services.insight import Insight, parse_since

NOT_ADMIN = N_("Only inbox admins can manage automations.")
FAILED = N_("Something went wrong on the bot's side — the bot's log has the details.")

HELP = N_("""\
/automation list — all automations
/automation show NAME — one automation (NAME quoted, or #ID)
/automation create NAME keywords="k1, k2" [match=any|all] [tags="t1, t2"] [topics="t1"]
    [resolve] [reason="R"] [crm=salesforce] [channels=c1,c2] [types=direct,group,public]
/automation enable NAME · disable NAME · delete NAME
/automation history NAME — its last changes, who made them · rollback NAME REV — put revision REV back
/automation test "message text" [channel=NAME] [type=TYPE] — what would fire; changes nothing
/automation preview NAME [since=7d|24h|ISO time] — what it would have done to past messages; changes nothing
    (or end /automation create … with the word preview: shown, not saved)
/automation why #CONVERSATION — what each automation did on each message, and why
/automation tags [add NAME | delete NAME] · topics [...] · reasons [...]
/automation topics add NAME [priority=urgent|high|normal|low] [team=TEAM]
/automation topics set NAME [priority=…] [team=TEAM | team=none] — its open conversations follow""")

CREATE_OPTIONS = ("keywords", "match", "tags", "topics", "reason", "crm", "channels", "types", "resolve")
MISSING_NAME = N_('give the automation a name, e.g. /automation create "Au revoir" keywords="au revoir, bye" resolve')
# What to say when a required value is missing, by (what it belongs to, field).
MISSING: dict[tuple[str, str | None], str] = {
    ("automation", "name"): MISSING_NAME,
    ("automation", "keywords"): N_('keywords: give at least one keyword, e.g. keywords="au revoir, bye"'),
    ("automation", "actions"): N_("give at least one action: tags=…, topics=…, resolve or crm=salesforce"),
    ("test", "text"): N_('give the message to test, e.g. /automation test "Au revoir !"'),
}
# Label wording by kind: French nouns have genders, so each kind has its own sentences.
MISSING_LABEL_NAME = {
    "tag": N_("give the tag's name, e.g. /automation tags add billing"),
    "topic": N_("give the topic's name, e.g. /automation topics add billing"),
    "reason": N_("give the resolution reason's name, e.g. /automation reasons add billing"),
}
UNKNOWN_LABEL = {
    "tag": N_('unknown tag "{name}" — create it with /automation tags add {name}'),
    "topic": N_('unknown topic "{name}" — create it with /automation topics add {name}'),
    "reason": N_('unknown resolution reason "{name}" — create it with /automation reasons add {name}'),
}
NO_LABEL = {
    "tag": N_('unknown tag "{name}" — see /automation tags'),
    "topic": N_('unknown topic "{name}" — see /automation topics'),
    "reason": N_('unknown resolution reason "{name}" — see /automation reasons'),
}
LABELS_TITLE = {"tag": N_("Tags"), "topic": N_("Topics"), "reason": N_("Resolution reasons")}
NO_LABELS = {
    "tag": N_("No tags yet — add one with /automation tags add NAME"),
    "topic": N_("No topics yet — add one with /automation topics add NAME"),
    "reason": N_("No resolution reasons yet — add one with /automation reasons add NAME"),
}
ADDED_LABEL = {
    "tag": N_("Added tag {name}."),
    "topic": N_("Added topic {name}."),
    "reason": N_("Added resolution reason {name}."),
}
DELETED_LABEL = {
    "tag": N_("Deleted tag {name}."),
    "topic": N_("Deleted topic {name}."),
    "reason": N_("Deleted resolution reason {name}."),
}
NAME_TO_DELETE = {
    "tag": N_("name the tag to delete, e.g. /automation tags delete NAME"),
    "topic": N_("name the topic to delete, e.g. /automation topics delete NAME"),
    "reason": N_("name the resolution reason to delete, e.g. /automation reasons delete NAME"),
}
# Words the service's errors carry as values (`Term`s) and the plan's features, translated with them.
MATCH = {"any": N_("any"), "all": N_("all")}
PRIORITIES = {"urgent": N_("urgent"), "high": N_("high"), "normal": N_("normal"), "low": N_("low")}
FEATURES = {"resolution reasons": N_("resolution reasons")}


def describe(exc: InboxError, _: Wording | None = None) -> str:
    """An error of the service, in the chat's words and language (the way out is a chat command)."""
    _ = _ or wording(None)
    match exc:
        case Missing(of=of, field=field) if (of, field) in MISSING:
            return _(MISSING[of, field])
        case Missing(of=of, field="name") if of in LABEL_KINDS:  # a tag's, topic's or reason's name
            return _(MISSING_LABEL_NAME[of])
        case UnknownLabel(kind=kind, name=name) if kind in UNKNOWN_LABEL:
            return _(UNKNOWN_LABEL[kind], name=name)
        case RevisionNotFound(automation_id=aid, revision=n):
            return _("#{id} has no revision {n} — see /automation history #{id}", id=aid, n=n)
        case NotFound(what="automation"):
            return _("no automation {ref} — see /automation list", ref=exc.shown)
        case NotFound(what=what, ref=ref) if what in NO_LABEL:
            return _(NO_LABEL[what], name=ref)
        case UnknownTeam(name=name):
            return _('unknown team "{name}" — create it first (POST /api/teams), then send this again', name=name)
        case PlanRefused(feature=feature, plan=plan, needs=needs):
            return _(
                'plan "{plan}" does not include {feature} (needs {needs})', plan=plan, feature=feature, needs=needs
            )
        case TurnedOff(feature=feature, setting=setting, section=section, in_action=in_action):
            off = _(
                "{feature} are turned off ({setting} = false in [{section}])",
                feature=_(FEATURES.get(feature, feature)),
                setting=setting,
                section=section,
            )
            return _("{problem}; resolve without reason= or turn them on", problem=off) if in_action else off
    values = {k: _(v) if isinstance(v, Term) else v for k, v in exc.values.items()}
    return _(exc.template, **values)


def _usage(detail: str, **values: object) -> Invalid:
    """A command that does not follow the grammar (see HELP); `detail` is marked with N_."""
    return Invalid("command", detail, **values)


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
                    raise _usage(N_("a quote ({quote}) is not closed — close it and send again"), quote=ch)
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
                raise _usage(N_('"{key}" is given twice'), key=key.lower())
            opts[key.lower()] = value
        elif opts:
            raise _usage(N_('unexpected "{text}" — put the name first, then priority=… and team=…'), text=tok.text)
        else:
            name_parts.append(tok.text)
    return " ".join(name_parts), opts


def _team_option(opts: dict[str, str]) -> str | None:
    """`team=Billing`; `team=none` (or empty): no team."""
    team = opts.get("team")
    return None if team is None or team.strip().lower() in ("", "none") else team


def _topic_line(t: Topic, _: Wording) -> str:
    """`Refunds · high · team Billing`."""
    priority = _(PRIORITIES[t.priority.value])
    if t.team:
        return _("{name} · {priority} · team {team}", name=t.name, priority=priority, team=t.team)
    return _("{name} · {priority}", name=t.name, priority=priority)


def _routing(t: Topic, _: Wording) -> str:
    """`high, team Billing`; `normal, no team`."""
    priority = _(PRIORITIES[t.priority.value])
    if t.team:
        return _("{priority}, team {team}", priority=priority, team=t.team)
    return _("{priority}, no team", priority=priority)


def describe_actions(actions: Sequence[Action], _: Wording | None = None) -> str:
    """What the actions do, in a few words: `tag "closing", resolve (reason "Contact left")`."""
    _ = _ or wording(None)
    parts: list[str] = []
    tags = [a.value for a in actions if a.type is ActionType.TAG and a.value]
    topics = [a.value for a in actions if a.type is ActionType.TOPIC and a.value]
    if tags:
        parts.append(_("tag {names}", names=", ".join(map(_q, tags))))
    if topics:
        parts.append(_("topic {names}", names=", ".join(map(_q, topics))))
    for a in actions:
        if a.type is ActionType.RESOLVE:
            parts.append(_("resolve (reason {reason})", reason=_q(a.value)) if a.value else _("resolve"))
        elif a.type is ActionType.CRM:
            parts.append(_("send to {target}", target=a.value or "salesforce"))
    return ", ".join(parts)


def _state(a: Automation, _: Wording) -> str:
    return _("enabled") if a.enabled else _("disabled")


def _of(a: Automation, _: Wording) -> str:
    """`any of` / `all of` (the keywords)."""
    return _("all of") if a.match.value == "all" else _("any of")


@dataclass(frozen=True, slots=True)
class Ask:
    """Who sends this command and the language to answer in."""

    actor: str
    _: Wording


HISTORY_LINES = 5


def _revision_line(r: AutomationRevision, _: Wording) -> str:
    """`3 · 2026-12-01 10:02 UTC · updated by slack:U1 — any of bye, ciao → tag "closing" · enabled`."""
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
    actions = describe_actions(tuple(Action.from_json(x) for x in a.get("actions", ())), _)
    state = _("enabled") if a.get("enabled") else _("disabled")
    return _(
        "{revision} · {at} · {change} by {by} — {match} of {keywords} → {actions} · {state}",
        revision=r.revision,
        at=at,
        change=change,
        by=r.by,
        match=_(MATCH.get(str(a.get("match", "any")), "any")),
        keywords=_keywords(a.get("keywords", ())),
        actions=actions,
        state=state,
    )


class CommandRunner:
    """Runs one `/automation …` command for a caller and returns the reply text."""

    def __init__(self, admin: Admin, insight: Insight | None = None) -> None:
        self.admin = admin
        self.insight = insight if insight is not None else Insight(admin.settings, admin)

    def wording(self, lang: str | None = None) -> Wording:
        """The catalogue in `lang` (one of ours), else in the organization's language."""
        return wording(lang or self.admin.settings.organization.language)

    async def run(self, text: str, *, is_admin: bool, actor: str, lang: str | None = None) -> str:
        """The reply to `/automation <text>`, in `lang` (None: the organization's language)."""
        _ = self.wording(lang)
        if not is_admin:
            return _(NOT_ADMIN)
        if "\x00" in text:  # the store cannot hold it (PostgreSQL)
            return _("the command holds a NUL character — remove it and send again")
        ask = Ask(actor, _)
        try:
            tokens = tokenize(text.strip())
            if tokens and tokens[0].text.lower() in ("/automation", "automation") and not tokens[0].quoted:
                tokens = tokens[1:]
            if not tokens:
                return _(HELP)
            sub, args = tokens[0].text.lower(), tokens[1:]
            handler = getattr(self, f"_cmd_{sub}", None)
            if handler is None or tokens[0].quoted:
                return _('unknown subcommand "{sub}" — try /automation help', sub=tokens[0].text)
            result: str = await handler(args, ask)
            return result
        except InboxError as exc:
            return describe(exc, _)

    @staticmethod
    def form_for(text: str) -> str | None:
        """The chat form a command asks for: "list" (with buttons) for `list`, "create" (a form)
        for `create` with nothing after it; None for every other command (answered in text)."""
        try:
            tokens = tokenize(text.strip())
        except InboxError:
            return None
        if tokens and tokens[0].text.lower() in ("/automation", "automation") and not tokens[0].quoted:
            tokens = tokens[1:]
        if len(tokens) == 1 and not tokens[0].quoted and tokens[0].text.lower() in ("list", "create"):
            return tokens[0].text.lower()
        return None

    # --- subcommands -------------------------------------------------------------------------
    async def _cmd_help(self, args: list[Token], ask: Ask) -> str:
        return ask._(HELP)

    async def _cmd_list(self, args: list[Token], ask: Ask) -> str:
        _ = ask._
        automations = await self.admin.list_automations()
        if not automations:
            return _('No automations yet. Create one: /automation create "Au revoir" keywords="au revoir, bye" resolve')
        return "\n".join(self.line(a, _) for a in automations)

    def line(self, a: Automation, _: Wording) -> str:
        """One automation in a list: what it does, whether it is on, and whether the plan skips it."""
        line = _(
            "#{id} {name} — {of}: {keywords} → {actions} · {state}",
            id=a.id,
            name=_q(a.name),
            of=_of(a, _),
            keywords=_keywords(a.keywords),
            actions=describe_actions(a.actions, _),
            state=_state(a, _),
        )
        problem = plan_problem(a, self.admin.settings)
        if problem:
            line += _(" · ⚠ skipped: {why}", why=describe(problem, _))
        return line

    def _name(self, args: list[Token], what: str) -> str:
        if not args:
            raise _usage(N_('name the automation to {what}, e.g. /automation {what} "Au revoir" or #3'), what=what)
        if len(args) > 1 and not args[0].quoted:
            return " ".join(t.text for t in args)  # unquoted multi-word name
        if len(args) > 1:
            raise _usage(N_("unexpected {text} after the name — see /automation help"), text=_q(args[1].text))
        return args[0].text

    async def _cmd_show(self, args: list[Token], ask: Ask) -> str:
        _ = ask._
        a = await self.admin.find(self._name(args, "show"))
        problem = plan_problem(a, self.admin.settings)
        every = _("all")
        lines = [
            _("#{id} {name} ({state})", id=a.id, name=_q(a.name), state=_state(a, _)),
            _("keywords ({match}): {keywords}", match=_(MATCH[a.match.value]), keywords=_keywords(a.keywords)),
            _("actions: {actions}", actions=describe_actions(a.actions, _)),
            _(
                "channels: {channels} · types: {types}",
                channels=", ".join(a.channels) or every,
                types=", ".join(a.types) or every,
            ),
        ]
        if problem:
            lines.append(_("⚠ skipped at run time: {why}", why=describe(problem, _)))
        return "\n".join(lines)

    async def _cmd_create(self, args: list[Token], ask: Ask) -> str:
        _ = ask._

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
                raise _usage(
                    N_('unexpected "{text}" — options are written key=value; see /automation help'), text=tok.text
                )
            if key not in CREATE_OPTIONS or key == "resolve":
                raise _usage(N_('unknown option "{key}" — see /automation help'), key=key)
            if key in opts:
                raise _usage(N_('"{key}" is given twice'), key=key)
            opts[key] = value
        actions: list[dict[str, str | None]] = []
        actions += [{"type": "tag", "tag": t} for t in _split_list(opts.get("tags", ""))]
        actions += [{"type": "topic", "topic": t} for t in _split_list(opts.get("topics", ""))]
        if "tags" in opts and not _split_list(opts["tags"]):
            raise _usage(N_('tags= is empty — e.g. tags="closing"'))
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
            return await self._preview(await self.admin.candidate(data), since=None, enabled=True, _=_)
        a = await self.admin.create(data, actor=ask.actor)
        return self.created(a, _) + await self._warnings_of(a, _)

    @staticmethod
    def created(a: Automation, _: Wording) -> str:
        """The reply to a new automation: what it does, in a sentence."""
        scope = []
        if a.channels:
            scope.append(_("channels {names}", names=", ".join(a.channels)))
        if a.types:
            scope.append(_("types {names}", names=", ".join(a.types)))
        return _(
            "Created automation #{id} {name}: when a message holds {of} {keywords} → {actions}{scope}. Enabled.",
            id=a.id,
            name=_q(a.name),
            of=_of(a, _),
            keywords=", ".join(map(_q, a.keywords)),
            actions=describe_actions(a.actions, _),
            scope=_(" (only {scope})", scope="; ".join(scope)) if scope else "",
        )

    async def _cmd_enable(self, args: list[Token], ask: Ask) -> str:
        a, changed = await self.admin.set_enabled(self._name(args, "enable"), True, actor=ask.actor)
        if changed:
            said = ask._("Enabled automation #{id} {name}.", id=a.id, name=_q(a.name))
        else:
            said = ask._("#{id} {name} is already enabled.", id=a.id, name=_q(a.name))
        return said + await self._warnings_of(a, ask._)

    async def _cmd_disable(self, args: list[Token], ask: Ask) -> str:
        a, changed = await self.admin.set_enabled(self._name(args, "disable"), False, actor=ask.actor)
        if changed:
            return ask._("Disabled automation #{id} {name}.", id=a.id, name=_q(a.name))
        return ask._("#{id} {name} is already disabled.", id=a.id, name=_q(a.name))

    async def _cmd_delete(self, args: list[Token], ask: Ask) -> str:
        a = await self.admin.delete(self._name(args, "delete"), actor=ask.actor)
        return ask._("Deleted automation #{id} {name}. Its past runs are kept.", id=a.id, name=_q(a.name))

    async def _cmd_history(self, args: list[Token], ask: Ask) -> str:
        """The last few revisions, newest first. `#ID` also finds a deleted automation's."""
        _ = ask._
        ref = self._name(args, "history").strip()
        digits = ref[1:]
        if ref.startswith("#") and digits.isascii() and digits.isdigit() and len(digits) < 10:
            automation_id = int(digits)
        else:
            automation_id = (await self.admin.find(ref)).id
        found = await self.admin.revisions(automation_id, limit=HISTORY_LINES)
        newest = found[0].automation
        lines = [_("History of #{id} {name}, newest first:", id=automation_id, name=_q(str(newest.get("name"))))]
        lines += [_revision_line(r, _) for r in found]
        if found[0].change != "deleted":
            lines.append(_("Put one back: /automation rollback #{id} REV", id=automation_id))
        return "\n".join(lines)

    async def _cmd_rollback(self, args: list[Token], ask: Ask) -> str:
        _ = ask._
        last = args[-1].text if args else ""
        if len(args) < 2 or not (last.isascii() and last.isdigit()) or len(last) > 9:
            raise _usage(N_('name the automation and the revision, e.g. /automation rollback "Au revoir" 2'))
        a = await self.admin.rollback(self._name(args[:-1], "rollback"), int(last), actor=ask.actor)
        return _(
            "Rolled #{id} {name} back to revision {old} (now revision {new}): {match} of {keywords} → {actions}. "
            "It stays {state}.",
            id=a.id,
            name=_q(a.name),
            old=last,
            new=a.revision,
            match=_(MATCH[a.match.value]),
            keywords=_keywords(a.keywords),
            actions=describe_actions(a.actions, _),
            state=_state(a, _),
        )

    async def _cmd_test(self, args: list[Token], ask: Ask) -> str:
        _ = ask._
        if not args:
            raise Missing("text", of="test")
        text_parts: list[str] = []
        opts: dict[str, str] = {}
        for tok in args:
            key, sep, value = tok.text.partition("=")
            if sep and not tok.opened and key.lower() in ("channel", "type"):
                opts[key.lower()] = value
            elif opts:
                raise _usage(N_('unexpected "{text}" — quote the message: /automation test "…"'), text=tok.text)
            else:
                text_parts.append(tok.text)
        result = await self.admin.test(" ".join(text_parts), channel=opts.get("channel"), type=opts.get("type"))
        ev = result.evaluation
        lines = []
        if not ev.firings:
            lines.append(_("Nothing would fire."))
        for f in ev.firings:
            lines.append(
                _(
                    "#{id} {name} would fire on {keywords} → {actions}",
                    id=f.rule.id,
                    name=_q(f.rule.name),
                    keywords=", ".join(map(_q, f.keywords)),
                    actions=describe_actions(f.actions, _) or _("nothing"),
                )
            )
        for name, why in result.skipped:
            lines.append(_("{name} is skipped: {why}", name=_q(name), why=describe(why, _)))
        lines.append(_("(test only — nothing was changed)"))
        return "\n".join(lines)

    async def _labels(self, kind: str, args: list[Token], ask: Ask) -> str:
        _ = ask._
        cmd = LABEL_KINDS[kind].plural
        if not args:
            names = await self.admin.list_labels(kind)
            if not names:
                return _(NO_LABELS[kind])
            return _("{title}: {names}", title=_(LABELS_TITLE[kind]), names=", ".join(names))
        verb = args[0].text.lower()
        name = " ".join(t.text for t in args[1:])
        if verb == "add":
            added = await self.admin.add_label(kind, name, actor=ask.actor)
            return _(ADDED_LABEL[kind], name=_q(added))
        if verb in ("delete", "remove"):
            if not name.strip():
                raise _usage(NAME_TO_DELETE[kind])
            deleted = await self.admin.delete_label(kind, name, actor=ask.actor)
            return _(DELETED_LABEL[kind], name=_q(deleted))
        raise _usage(
            N_('unknown "{verb}" — use /automation {cmd}, {cmd} add NAME or {cmd} delete NAME'),
            verb=args[0].text,
            cmd=cmd,
        )

    async def _cmd_tags(self, args: list[Token], ask: Ask) -> str:
        return await self._labels("tag", args, ask)

    async def _cmd_topics(self, args: list[Token], ask: Ask) -> str:
        _ = ask._
        verb = args[0].text.lower() if args else ""
        if not args:
            topics = await self.admin.list_topics()
            if not topics:
                return _("No topics yet — add one with /automation topics add NAME [priority=high] [team=TEAM]")
            return _("Topics:") + "\n" + "\n".join(_topic_line(t, _) for t in topics)
        if verb == "add":
            name, opts = _topic_options(args[1:])
            topic = await self.admin.add_topic(
                name, priority=opts.get("priority"), team=_team_option(opts), actor=ask.actor
            )
            return _("Added topic {name} ({routing}).", name=_q(topic.name), routing=_routing(topic, _))
        if verb == "set":
            name, opts = _topic_options(args[1:])
            if not name:
                raise _usage(N_("name the topic to change, e.g. /automation topics set Refunds priority=high"))
            if not opts:
                raise _usage(
                    N_("say what to change, e.g. /automation topics set {name} priority=high team=Billing"), name=name
                )
            team = _team_option(opts) if "team" in opts else ...
            topic = await self.admin.change_topic(name, priority=opts.get("priority"), team=team, actor=ask.actor)
            return _(
                "Topic {name} is now {routing}; its open conversations follow.",
                name=_q(topic.name),
                routing=_routing(topic, _),
            )
        if verb in ("delete", "remove"):
            return await self._labels("topic", args, ask)
        raise _usage(
            N_('unknown "{verb}" — use /automation topics, topics add NAME, topics set NAME or topics delete NAME'),
            verb=args[0].text,
        )

    async def _cmd_reasons(self, args: list[Token], ask: Ask) -> str:
        return await self._labels("reason", args, ask)

    # --- why, preview, lint ---------------------------------------------------------------------
    async def _warnings_of(self, a: Automation, _: Wording) -> str:
        """The lint warnings of a saved automation, one line each under the reply ("" for none)."""
        lines = warning_lines(await self.insight.lint_saved(a), _)
        return "".join("\n" + line for line in lines)

    async def _cmd_why(self, args: list[Token], ask: Ask) -> str:
        _ = ask._
        ref = args[0].text.removeprefix("#") if len(args) == 1 else ""
        if not (ref.isascii() and ref.isdigit() and len(ref) < 19):
            raise _usage(N_("name the conversation by its number, e.g. /automation why #12"))
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

    async def _cmd_preview(self, args: list[Token], ask: Ask) -> str:
        since: str | None = None
        if args and not args[-1].opened and args[-1].text.lower().startswith("since="):
            since = args[-1].text.partition("=")[2]
            args = args[:-1]
        a = await self.admin.find(self._name(args, "preview"))
        return await self._preview(rule_of(a), since=since, enabled=a.enabled, name=a.name, _=ask._)

    async def _preview(
        self, rule: Rule, *, since: str | None, enabled: bool, name: str | None = None, _: Wording
    ) -> str:
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
                "✓ {who} fired on {found} → {actions}", who=who, found=_found(e), actions=describe_actions(e.actions, _)
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
