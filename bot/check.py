"""`inbox-bot check`: config, environment, store, automations against the plan, failed outbox jobs."""

from __future__ import annotations

from bot import plans
from bot.config import Settings
from bot.domain import ActionType
from bot.services.admin import Admin, RuleCache


async def run_check(settings: Settings) -> int:
    """Print one line per finding; 0 when everything is usable, 1 otherwise."""
    problems = 0
    print(f"config: ok ({settings.path})")
    if not settings.api_tokens():
        print(f"api: WARN no tokens — set {settings.api.tokens_env} to enable the JSON API")
    for ch in settings.channels:
        missing = settings.missing_secrets(ch)
        if missing:
            problems += 1
            print(f'channel "{ch.name}" ({ch.kind}): FAIL set {", ".join(missing)} in the environment')
        else:
            print(f'channel "{ch.name}" ({ch.kind}): ok')
    sf = settings.crm.salesforce
    if sf is not None:
        names = [sf.session_id_env] if sf.session_id_env else [sf.username_env, sf.password_env]
        missing = [n for n in names if n and not settings.secret(n)]
        if missing:
            problems += 1
            print(f"crm.salesforce: FAIL set {', '.join(missing)} in the environment")
        else:
            print("crm.salesforce: ok")

    from bot.store import db, repo

    try:
        pending = await db.pending_migrations(settings.database.url)
    except Exception as exc:
        print(f"store: FAIL cannot reach the store: {exc}")
        return 1
    if pending:
        problems += 1
        print(f"store: FAIL {len(pending)} migration(s) not applied ({', '.join(pending)}) — run `inbox-bot migrate`")
        return 1
    try:
        async with db.open_store(settings.database.url):
            await repo.ping()
            print("store: ok")
            admin = Admin(settings, RuleCache(settings))
            for a in await admin.list_automations():
                why = plans.refusal(settings.organization, a.actions)
                if why and a.enabled:
                    problems += 1
                    print(f'automation #{a.id} "{a.name}": SKIPPED at run time — {why}; disable or change it')
                elif a.enabled and sf is None and any(x.type is ActionType.CRM for x in a.actions):
                    problems += 1
                    print(
                        f'automation #{a.id} "{a.name}": sends to Salesforce, but [crm.salesforce] is not configured'
                        " — its sync jobs will fail; add the section or remove the crm action"
                    )
            failed = await repo.count_jobs("failed")
            if failed:
                problems += 1
                print(f"outbox: FAIL {failed} job(s) failed for good — see GET /api/outbox?status=failed")
            else:
                print("outbox: ok")
    except Exception as exc:
        print(f"store: FAIL {exc} — run `inbox-bot migrate` first?")
        return 1
    print("check: " + ("ok" if not problems else f"{problems} problem(s)"))
    return 0 if not problems else 1
