"""English text pool for the synthetic corpus, normalised to the base-960h alphabet.

Source: the Debian `fortunes` + `fortunes-min` packages (/usr/share/games/fortunes): ~15k
quotations, jokes and literary lines in English (BSD-ish / public-domain collection shipped in
Debian main), available offline through the Debian package registry. Each fortune is split
into sentences, normalised (upper case A-Z, apostrophe, single spaces; integers spelled out,
"&" -> "AND", "%" -> "PERCENT"), filtered to 3..14 words and deduplicated.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

DEFAULT_FORTUNE_DIRS = ("/usr/share/games/fortunes",)
# Collections that are not prose (ASCII drawings, code) or not English.
SKIP_FILES = {"ascii-art", "linuxcookie", "perl", "zippy"}
ALLOWED = re.compile(r"^[A-Z' ]+$")

_ONES = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN", "ELEVEN", "TWELVE",
         "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN", "SEVENTEEN", "EIGHTEEN", "NINETEEN"]
_TENS = ["_", "_", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY"]


def number_to_words(n: int) -> str:
    """Spell a non-negative integer (< 10**9) in upper-case English without 'AND'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " HUNDRED" + ("" if rest == 0 else " " + number_to_words(rest))
    for size, name in ((10**6, "MILLION"), (1000, "THOUSAND")):
        if n >= size:
            rest = n % size
            return number_to_words(n // size) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise ValueError(n)


def _spell_number(match: re.Match[str]) -> str:
    digits = match.group(0)
    n = int(digits)
    # Four-digit years are read as two pairs ("NINETEEN EIGHTY FOUR"), as people say them.
    if len(digits) == 4 and 1100 <= n <= 2099 and n % 100 != 0 and not 2000 <= n <= 2009:
        return number_to_words(n // 100) + " " + number_to_words(n % 100)
    if n >= 10**9:
        return " "
    return " " + number_to_words(n) + " "


def normalize_text(text: str) -> str | None:
    """Upper-case A-Z/apostrophe/space text, or None when the sentence cannot be spoken cleanly."""
    t = text.replace("\u2019", "'").replace("`", "'")
    t = re.sub(r"(\d),(\d{3})", r"\1\2", t)            # 1,000 -> 1000
    if re.search(r"\d[.:/]\d|\d(st|nd|rd|th)\b|\$|#|@|\+|=|\\|\||<|>|_|\^|~|\*|\{|\[", t):
        return None                                    # decimals, times, ordinals, symbols, code
    t = t.replace("&", " and ").replace("%", " percent ")
    t = re.sub(r"\d+", _spell_number, t)
    t = t.upper()
    t = re.sub(r"[-/]", " ", t)
    t = re.sub(r"[^A-Z' ]", " ", t)
    # Keep apostrophes only inside words (DON'T, O'CLOCK), drop quote marks.
    t = re.sub(r"(?<![A-Z])'|'(?![A-Z])", " ", t)
    t = re.sub(r"\s+", " ", t).strip()
    if not t or not ALLOWED.match(t):
        return None
    words = t.split()
    if any(len(w) > 18 for w in words):
        return None
    # Drop lines of mostly one-letter tokens (acronyms spelled out, ASCII art leftovers).
    if sum(len(w) == 1 and w not in ("A", "I") for w in words) > 0:
        return None
    return t


def _fortune_entries(path: Path) -> list[str]:
    raw = path.read_text(encoding="utf-8", errors="replace")
    entries = []
    for chunk in re.split(r"^%\s*$", raw, flags=re.MULTILINE):
        lines = []
        for line in chunk.splitlines():
            if re.match(r"^\s*(--|\u2014)", line):       # attribution line
                break
            lines.append(line.strip())
        text = " ".join(part for part in lines if part)
        if text:
            entries.append(text)
    return entries


def split_sentences(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text)
    return [s.strip() for s in re.split(r"(?<=[.!?;:])\s+(?=[\"'(A-Z0-9])", text) if s.strip()]


def sentence_pool(dirs: Iterable[str | Path] = DEFAULT_FORTUNE_DIRS, min_words: int = 3,
                  max_words: int = 14) -> list[str]:
    """Sorted, deduplicated list of normalised sentences from every fortune file found."""
    pool: set[str] = set()
    files = []
    for d in dirs:
        d = Path(d)
        if d.is_dir():
            files += [p for p in sorted(d.iterdir())
                      if p.is_file() and not p.suffix and p.name not in SKIP_FILES]
    for f in files:
        for entry in _fortune_entries(f):
            if entry.count('"') > 4 or re.search(r"^\s*[A-Z][a-z]*:", entry):
                # dialogues ("A: ... B: ...") read badly as one utterance
                continue
            for sent in split_sentences(entry):
                norm = normalize_text(sent)
                if norm and min_words <= len(norm.split()) <= max_words:
                    pool.add(norm)
    return sorted(pool)
