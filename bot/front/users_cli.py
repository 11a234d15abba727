"""`inbox-bot users add | list | set-password | deactivate`: people who sign in to the web inbox."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from bot.config import Settings
from bot.errors import InboxError, UnknownTeam
from bot.services.people import People
from bot.store import db

# How the audit log records a change made on the command line (whoever runs it has the store).
CLI = "cli"
SettingsLoader = Callable[[argparse.Namespace], Settings]


def _read_password(args: argparse.Namespace) -> str | None:
    """The password from standard input (first line) with --password-stdin, else None (generate)."""
    if not args.password_stdin:
        return None
    return sys.stdin.readline().rstrip("\r\n")


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    await db.migrate(settings.database.url)
    async with db.open_store(settings.database.url):
        people = People()
        if args.users_command == "add":
            created = await people.add_user(
                email=args.email,
                role=args.role,
                name=args.name,
                teams=args.team,
                password=_read_password(args),
                actor=CLI,
            )
            u = created.user
            print(f"Added {u.role.value} {u.email} (id {u.id}).")
            if created.password:
                print(f"Password (shown once): {created.password}")
        elif args.users_command == "list":
            for u in await people.list_users():
                state = "active" if u.active else "deactivated"
                teams = ", ".join(u.teams) or "no team"
                print(f"{u.id}\t{u.email}\t{u.name}\t{u.role.value}\t{teams}\t{state}")
        elif args.users_command == "set-password":
            changed = await people.set_password(args.email, _read_password(args), actor=CLI)
            print(f"New password set for {changed.user.email}; their sessions have ended.")
            if changed.password:
                print(f"Password (shown once): {changed.password}")
        elif args.users_command == "deactivate":
            user = await people.deactivate(args.email, actor=CLI)
            print(f"Deactivated {user.email}; their sessions have ended.")
    return 0


def describe(exc: InboxError) -> str:
    """A refusal in the command line's words."""
    if isinstance(exc, UnknownTeam):  # teams are made over the API
        return f'unknown team "{exc.name}" — create it with POST /api/teams'
    return str(exc)


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_run(settings, args))
    except InboxError as exc:
        print(f"inbox-bot users: {describe(exc)}", file=sys.stderr)
        return 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Register `users …` on the CLI's subcommand parser; `common` holds the shared options."""
    users = sub.add_parser("users", help="people who sign in to the web inbox", parents=[common])
    us = users.add_subparsers(dest="users_command", required=True)
    stdin_help = "read the password from the first line of standard input instead of generating one"
    a = us.add_parser("add", help="add an admin or an agent", parents=[common])
    a.add_argument("email", help="the email the person signs in with (unique, case-insensitive)")
    a.add_argument("--role", required=True, choices=["admin", "agent"], help="admin: everything; agent: conversations")
    a.add_argument("--name", help="the name shown in the inbox (default: the email's local part)")
    a.add_argument("--team", action="append", help="a team the person belongs to (repeat for several)")
    a.add_argument("--password-stdin", action="store_true", help=stdin_help)
    us.add_parser("list", help="list users", parents=[common])
    p = us.add_parser("set-password", help="set a new password (ends the person's sessions)", parents=[common])
    p.add_argument("email")
    p.add_argument("--password-stdin", action="store_true", help=stdin_help)
    d = us.add_parser("deactivate", help="stop a person signing in (ends their sessions)", parents=[common])
    d.add_argument("email")
