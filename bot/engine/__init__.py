"""The automation engine: pure, synchronous keyword matching and rule evaluation.

No IO here: callers build a `RuleSet` from the enabled automations (once per change) and call
`RuleSet.evaluate` for each inbound message inside their own transaction.
"""

from bot.engine.matcher import KeywordIndex, reference_find
from bot.engine.normalize import format_keywords, keyword_key, normalize, parse_keywords
from bot.engine.rules import Evaluation, Firing, Rule, RuleSet, Scan

__all__ = [
    "Evaluation",
    "Firing",
    "KeywordIndex",
    "Rule",
    "RuleSet",
    "Scan",
    "format_keywords",
    "keyword_key",
    "normalize",
    "parse_keywords",
    "reference_find",
]
