"""Command line: `inbox-bot serve | migrate | check | send | users` (also `python -m bot …`)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import importlib.metadata
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bot.config import ConfigError, Settings, WebhookChannel, generate_session_key, load_settings
from bot.front import users_cli
from bot.logs import setup_logging

LOCAL_ENV = Path(".env.local")
DEMO_ADMIN_ENV = "INBOX_DEMO_ADMIN_PASSWORD"
DEMO_CHANNEL = "demo"
WORKER_MIN_UPTIME = 2.0  # a worker failing sooner after its start is a start-up error: not restarted

log = logging.getLogger("inbox.cli")


def load_local_env(path: Path = LOCAL_ENV) -> None:
    """Read KEY=VALUE lines of a git-ignored local env file; the real environment wins."""
    for key, value in _read_local_env(path).items():
        os.environ.setdefault(key, value)


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(args.config)
    except ConfigError as exc:
        print("inbox-bot: the config cannot be used:", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p}", file=sys.stderr)
        raise SystemExit(2) from None


def _read_local_env(path: Path = LOCAL_ENV) -> dict[str, str]:
    """The KEY=VALUE lines of the local env file (the first of a key wins, as when loading it)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), value.strip())
    return values


def _write_local_env(values: dict[str, str], path: Path = LOCAL_ENV) -> None:
    """Set KEY=VALUE lines in the local env file, replacing a key's old lines; the file is readable
    by its owner only (0600) from the moment it exists, and replaced whole (never half-written)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in values]
    kept += [f"{k}={v}" for k, v in values.items()]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(kept) + "\n")
    os.chmod(tmp, 0o600)  # a leftover .tmp may have been created with other permissions
    os.replace(tmp, path)


def _ensure_demo_secrets(settings: Settings) -> Settings:
    """First `make run`: generate the demo channel secret, an API token and the web inbox's session
    key into .env.local."""
    wanted: dict[str, str] = {}
    if not settings.api_tokens():
        wanted[settings.api.tokens_env] = "tok_" + secrets.token_urlsafe(24)
    if settings.session_key() is None:
        wanted[settings.server.session_key_env] = generate_session_key()
    for ch in settings.channels:
        if isinstance(ch, WebhookChannel) and not settings.secret(ch.secret_env):
            wanted[ch.secret_env] = secrets.token_urlsafe(32)
    if not wanted:
        return settings
    _write_local_env(wanted)
    os.environ.update(wanted)
    print(f"Generated {', '.join(wanted)} into {LOCAL_ENV} (git-ignored; keep it private).")
    return load_settings(settings.path)


async def _migrate(settings: Settings) -> None:
    from bot.store import db

    await db.migrate(settings.database.url)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging(settings)
    asyncio.run(_migrate(settings))
    print(f"Store is up to date ({_safe_url(settings.database.url)}).")
    return 0


def _safe_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


async def _seed_demo(settings: Settings) -> None:
    """An empty store gets the "Au revoir" example so the first message shows an automation."""
    from bot.services.admin import Admin, RuleCache
    from bot.store import db

    async with db.open_store(settings.database.url):
        admin = Admin(settings, RuleCache(settings))
        if await admin.list_automations(limit=1) or settings.organization.plan != "enterprise":
            return
        reasons = settings.organization.resolution_reasons
        for kind, name, wanted in (("reason", "Contact left", reasons), ("tag", "closing", True)):
            if wanted and name.casefold() not in (n.casefold() for n in await admin.list_labels(kind)):
                await admin.add_label(kind, name, actor="cli")
        await admin.create(
            {
                "name": "Au revoir",
                "keywords": ["au revoir", "bye", "goodbye"],
                "actions": [
                    {"type": "tag", "tag": "closing"},
                    {"type": "resolve", "reason": "Contact left" if reasons else None},
                ],
            },
            actor="cli",
        )
        print('Created the demo automation "Au revoir" (keywords: au revoir, bye, goodbye → tag + resolve).')


async def _ensure_demo_admin(settings: Settings, env_file: Path = LOCAL_ENV) -> str | None:
    """On an empty store only: the demo admin, its generated password written to `env_file`.

    Returns the password for the start banner: the one just generated, else the one `env_file`
    keeps while it still signs the demo admin in (the store keeps only its hash)."""
    from bot.services.people import DEMO_ADMIN, People
    from bot.store import db

    async with db.open_store(settings.database.url):
        people = People()
        password = await people.ensure_demo_admin()
        if password is not None:
            _write_local_env({DEMO_ADMIN_ENV: password}, env_file)
            print(f"Created the demo admin {DEMO_ADMIN}; its password is in {env_file} ({DEMO_ADMIN_ENV}).")
            return password
        saved = _read_local_env(env_file).get(DEMO_ADMIN_ENV)
        if saved and await people.password_matches(DEMO_ADMIN, saved):
            return saved
    return None


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> int:
    """One line that names the address and the way out, instead of a traceback; exit code 1."""
    where = f"{_url_host(host)}:{port}"
    if exc.errno == errno.EADDRINUSE:
        other = port + 1 if 0 < port < 65535 else 8081
        print(
            f"inbox-bot: port {port} is already in use on {host} — choose another with --port {other}"
            f" (make run PORT={other}) or [server] port in the config",
            file=sys.stderr,
        )
    elif exc.errno == errno.EACCES:
        print(
            f"inbox-bot: not allowed to listen on {where} (ports below 1024 need privileges)"
            " — choose another with --port (make run PORT=…)",
            file=sys.stderr,
        )
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
        print(
            f"inbox-bot: cannot listen on {where}: {reason} — choose another address with --host and --port"
            " (make run HOST=… PORT=…)",
            file=sys.stderr,
        )
    return 1


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _reachable_host(host: str) -> str:
    """The host to put in commands for this machine: a wildcard address is not one to connect to."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _fast_event_loop() -> None:
    """Serve on uvloop where it is installed (not on Windows): the same asyncio API, with
    transports in C — ingest takes a third more messages per second at a lower p99."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(settings: Settings, sock: socket.socket, *, banner: bool, admin_password: str | None = None) -> None:
    from aiohttp import web

    from bot.app import build_app

    app = build_app(settings)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=settings.server.shutdown_timeout
    )
    await runner.setup()
    host, port = sock.getsockname()[:2]
    site = web.SockSite(runner, sock, shutdown_timeout=settings.server.shutdown_timeout)
    await site.start()
    # What start-up built (rules, catalogues, the app) lives as long as the process: out of the
    # collector's sight, a full collection no longer walks it — 90–120 ms pauses under load before
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if banner:
        _print_banner(settings, host, port, admin_password=admin_password)
    print(f"inbox-bot serving on http://{_url_host(host)}:{port} (pid {os.getpid()})", flush=True)
    try:
        await stop.wait()
    finally:
        print("inbox-bot: shutting down — finishing in-flight requests and outbox work", flush=True)
        await runner.cleanup()


def _print_banner(settings: Settings, host: str, port: int, *, admin_password: str | None = None) -> None:
    """Ready-to-paste commands, aimed at the address actually served (`make run PORT=…` included),
    and the demo admin's password while it is the one `.env.local` keeps."""
    from bot.services.people import DEMO_ADMIN

    demo = settings.channel(DEMO_CHANNEL)
    channels = ", ".join(c.name for c in settings.channels) or "none"
    print(f"Channels: {channels}. Store: {_safe_url(settings.database.url)}")
    if admin_password:
        print(f"Demo admin: {DEMO_ADMIN}, password {admin_password} (kept in {LOCAL_ENV} as {DEMO_ADMIN_ENV})")
    print(f"Web inbox: http://{_url_host(_reachable_host(host))}:{port}/ (sign in with a user's email and password)")
    if demo is not None:
        base = f"http://{_url_host(_reachable_host(host))}:{port}"
        print("Send a first message (in another terminal):")
        print(f'  .venv/bin/inbox-bot send {DEMO_CHANNEL} "Au revoir !" --url {base}')
        print("Then see the conversation it opened (and resolved):")
        token = f"$(grep {settings.api.tokens_env} .env.local | cut -d= -f2 | cut -d, -f1)"
        print(f'  curl -s -H "Authorization: Bearer {token}" {base}/api/conversations')


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    workers = args.workers or 1
    supervisor = workers > 1 and not args.worker_child
    # Listen before anything else: a taken port is one line and exit 1, before anything is written.
    # Only workers share the port (SO_REUSEPORT); the supervisor's probe must see any listener.
    try:
        sock = _bind(host, port, reuse_port=args.worker_child)
    except OSError as exc:
        return _cannot_listen(host, port, exc)
    if supervisor:
        sock.close()  # only a probe: the workers bind the port themselves (SO_REUSEPORT)
    if args.demo:
        settings = _ensure_demo_secrets(settings)
    setup_logging(settings)
    if not args.worker_child:  # the supervisor migrated already: N children must not race
        asyncio.run(_migrate(settings))
    admin_password = None
    if args.demo and not args.worker_child:
        asyncio.run(_seed_demo(settings))
        admin_password = asyncio.run(_ensure_demo_admin(settings))
    if supervisor:
        return _run_workers(args, workers, host, port, settings)
    _fast_event_loop()
    asyncio.run(_serve(settings, sock, banner=args.demo, admin_password=admin_password))
    return 0


def _run_workers(args: argparse.Namespace, workers: int, host: str, port: int, settings: Settings) -> int:
    """N processes on one port (SO_REUSEPORT); the kernel spreads connections across them.

    The parent only supervises: it forwards SIGINT/SIGTERM to the children and waits for them to
    finish cleanly, and it restarts a child that dies on its own (a crash, an OOM kill). A child that
    fails with an error right after starting stops the whole set, so a bad config or a taken port
    is not retried forever."""
    if settings.database.is_sqlite:
        print("inbox-bot: note: several workers on SQLite share one writer; use PostgreSQL for real scale-out")
    cmd = [sys.executable, "-m", "bot", "serve", "--worker-child", "--host", host, "--port", str(port)]
    if args.config:
        cmd += ["--config", args.config]
    stopping = False

    env = dict(os.environ)
    if settings.session_key() is None:
        # one key for every worker, so a browser's session works whichever worker answers
        env[settings.server.session_key_env] = generate_session_key()
        print(f"inbox-bot: sessions end when the server restarts; set {settings.server.session_key_env}")

    def spawn() -> tuple[subprocess.Popen[bytes], float]:
        return subprocess.Popen(cmd, env=env), time.monotonic()

    procs = [spawn() for _ in range(workers)]

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes: dict[int, int] = {}
    while len(codes) < len(procs):
        for i, (p, started) in enumerate(procs):
            if i in codes:
                continue
            code = p.poll()
            if code is None:
                continue
            if stopping or (code > 0 and time.monotonic() - started < WORKER_MIN_UPTIME):
                codes[i] = code
                if not stopping:  # it could not start: stop the others and say so
                    print(
                        f"inbox-bot: worker pid {p.pid} exited with code {code} at start-up; stopping", file=sys.stderr
                    )
                    forward(signal.SIGTERM, None)
                continue
            print(f"inbox-bot: worker pid {p.pid} exited with code {code}; starting a new one", file=sys.stderr)
            procs[i] = spawn()
        time.sleep(0.1)
    return max((abs(c) for c in codes.values()), default=0)


def cmd_check(args: argparse.Namespace) -> int:
    from bot.check import run_check

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print("config: FAIL")
        for p in exc.problems:
            print(f"  - {p}")
        return 1
    setup_logging(settings)
    return asyncio.run(run_check(settings))


def cmd_send(args: argparse.Namespace) -> int:
    """Sign and POST one message to a running server's webhook channel."""
    from connectors.webhook.connector import signed_headers

    settings = _settings(args)
    ch = settings.channel(args.channel)
    if not isinstance(ch, WebhookChannel):
        print(f'inbox-bot: "{args.channel}" is not a webhook channel in {settings.path}', file=sys.stderr)
        return 2
    secret = settings.secret(ch.secret_env)
    if not secret:
        print(f"inbox-bot: set {ch.secret_env} (or run `make run` once to generate it)", file=sys.stderr)
        return 2
    url = (args.url or f"http://{settings.server.host}:{settings.server.port}").rstrip("/")
    body = json.dumps(
        {
            "id": args.id or f"cli-{secrets.token_hex(6)}",
            "contact": {"id": args.contact, "name": args.name or args.contact},
            "text": args.text,
            "type": args.type,
            **({"thread": args.thread} if args.thread else {}),
        }
    ).encode()
    req = urllib.request.Request(f"{url}/webhooks/{ch.name}", data=body, headers=signed_headers(secret, body))
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            print(resp.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"{exc.code}: {exc.read().decode()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"inbox-bot: cannot reach {url} ({exc.reason}) — is `make run` running?", file=sys.stderr)
        return 1


def _version() -> str:
    try:
        return importlib.metadata.version("inbox-bot")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inbox-bot", description="Automation bot for support conversations")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}", help="print the version and exit")
    p.add_argument("--config", help="path to config.toml (default: ./config.toml or $INBOX_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", help="path to config.toml", default=argparse.SUPPRESS)
        return sp

    s = add("serve", "migrate the store, then serve until SIGINT/SIGTERM")
    s.add_argument("--host", help="address to listen on (default: [server] host of the config)")
    s.add_argument("--port", type=int, help="port to listen on (default: [server] port of the config; make run PORT=…)")
    s.add_argument("--workers", type=int, default=None, help="processes sharing the port (SO_REUSEPORT)")
    s.add_argument(
        "--demo", action="store_true", help="generate local secrets, a demo automation and a demo admin (make run)"
    )
    s.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)
    add("migrate", "apply pending migrations").set_defaults(func=cmd_migrate)
    add("check", "validate config, environment, store and automations").set_defaults(func=cmd_check)
    snd = add("send", "sign and send a message to a running server's webhook channel")
    snd.add_argument("channel", help="name of a webhook channel of the config (the demo one is `demo`)")
    snd.add_argument("text", help="the message text")
    snd.add_argument("--contact", default="demo-contact", help="the contact's id (default: demo-contact)")
    snd.add_argument("--name", help="the contact's display name (default: the contact id)")
    snd.add_argument("--thread", help="thread key; messages of one thread share a conversation (default: the contact)")
    snd.add_argument("--id", help="platform message id (default: random)")
    snd.add_argument(
        "--type", default="direct", choices=["direct", "group", "public"], help="conversation type (default: direct)"
    )
    snd.add_argument("--url", help="server base URL (default: from config)")
    snd.set_defaults(func=cmd_send)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="path to config.toml", default=argparse.SUPPRESS)
    users_cli.add_parser(sub, common)
    sub.choices["users"].set_defaults(func=cmd_users)
    return p


def cmd_users(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging(settings)
    return users_cli.cmd_users(args, settings)


def main(argv: list[str] | None = None) -> int:
    load_local_env()
    args = parser().parse_args(argv)
    if not hasattr(args, "config"):
        args.config = None
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
