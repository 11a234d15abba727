"""Local stand-ins for remote platforms (Slack Web API, Telegram Bot API), speaking their wire format."""
