"""`python -m bot …` is `inbox-bot …`."""

from bot.cli import main

raise SystemExit(main())
