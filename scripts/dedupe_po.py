"""Drop repeated entries from a .po file (the first one stays): union merges of the catalogue
can leave two entries for one English text. Prints any repeat whose translation differed."""

from __future__ import annotations

import sys
from pathlib import Path


def main(path: str) -> int:
    text = Path(path).read_text(encoding="utf-8")
    blocks = text.rstrip("\n").split("\n\n")
    seen: dict[str, str] = {}
    kept = []
    for block in blocks:
        lines = block.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith(("msgid ", "msgctxt "))), None)
        if start is None:
            kept.append(block)
            continue
        end = next((i for i, line in enumerate(lines) if line.startswith("msgstr")), len(lines))
        key = "\n".join(lines[start:end])
        body = "\n".join(lines[end:])
        if key in seen and key != 'msgid ""':
            if seen[key] != body:
                print(f"kept the first of two translations:\n{key}\n  first: {seen[key]}\n  other: {body}\n")
            continue
        seen[key] = body
        kept.append(block)
    Path(path).write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    print(f"{len(blocks) - len(kept)} repeated entries dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
