"""A CTC checkpoint's output vocabulary, read from its tokenizer files (any language, any case).

The acoustic model's logit columns are the tokens of `vocab.json`; `tokenizer_config.json` says
which token is the CTC blank (`pad_token`), which one separates words (`word_delimiter_token`)
and which are special (`bos/eos/unk_token`, additional special tokens): those are never spelled
out. The builders read a checkpoint with `Vocabulary.load_from_dir` and write the same two files
into the decoder's folder with `save_to_dir`, so the served decoder, the in-process pipeline, the
LM builder and the tuner all read one vocabulary the same way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2v_triton.serving.spec import PAD_TOKEN, SPECIAL_TOKENS, WORD_DELIMITER

VOCAB_FILE = "vocab.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token")


class VocabularyError(ValueError):
    """The tokenizer files cannot describe a CTC output layer; the message says what is wrong."""


def _token(value: object) -> str | None:
    """A token as tokenizer files store it: a string or an AddedToken dict ({"content": ...})."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _added_tokens(path: Path, settings: dict[str, Any], tokens: dict[str, int]) -> dict[str, int]:
    """Tokens the tokenizer added after vocab.json (added_tokens.json, or tokenizer_config.json's
    added_tokens_decoder): e.g. <s> and </s> when vocab.json lacks them. The model's output layer
    has columns for them (vocab_size = len(tokenizer))."""
    added: dict[str, int] = {}
    file = path / ADDED_TOKENS_FILE
    if file.is_file():
        added.update(json.loads(file.read_text(encoding="utf-8")))
    for token_id, entry in (settings.get("added_tokens_decoder") or {}).items():
        token = _token(entry)
        if token is not None:
            added.setdefault(token, int(token_id))
    taken = set(tokens.values())
    return {t: i for t, i in added.items() if t not in tokens and i not in taken}


@dataclass(frozen=True)
class Vocabulary:
    tokens: dict[str, int]                     # token -> logit column
    blank: str = PAD_TOKEN                     # the CTC blank (the tokenizer's pad token)
    word_delimiter: str = WORD_DELIMITER       # decoded as a space
    special: tuple[str, ...] = tuple(t for t in SPECIAL_TOKENS if t != PAD_TOKEN)

    def __post_init__(self) -> None:
        if not self.tokens:
            raise VocabularyError("the vocabulary is empty")
        if all(isinstance(v, dict) for v in self.tokens.values()):
            raise VocabularyError("per-language vocabularies ({lang: {token: id}}) are not supported: "
                                  "pick one language's vocabulary (the tokenizer's target_lang)")
        ids = sorted(self.tokens.values())
        if ids != list(range(len(ids))):
            raise VocabularyError(f"token ids must be 0..{len(ids) - 1} without gaps or repeats")
        if self.blank not in self.tokens:
            raise VocabularyError(f"the CTC blank (pad token) {self.blank!r} is not in the vocabulary")
        if self.word_delimiter not in self.tokens and self.word_delimiter != " ":
            raise VocabularyError(f"the word delimiter {self.word_delimiter!r} is not in the vocabulary")

    @property
    def size(self) -> int:
        return len(self.tokens)

    def text_of(self, token: str) -> str | None:
        """What a token spells: '' for the blank, ' ' for the delimiter, None for a special token."""
        if token == self.blank:
            return ""
        if token == self.word_delimiter:
            return " "
        return None if token in self.special else token

    @property
    def upper_case(self) -> bool | None:
        """True/False when most cased letters are upper/lower case; None without cased letters.
        LM words and hotwords are matched to this case."""
        letters = [t for t in self.tokens if t not in self.special and len(t) == 1 and t.upper() != t.lower()]
        return sum(t.isupper() for t in letters) > len(letters) // 2 if letters else None

    @classmethod
    def load_from_dir(cls, path: str | Path) -> Vocabulary:
        """From a checkpoint or decoder folder: vocab.json, tokenizer_config.json and
        special_tokens_map.json (the last two optional: wav2vec2 defaults otherwise)."""
        path = Path(path)
        vocab_file = path / VOCAB_FILE
        if not vocab_file.is_file():
            raise VocabularyError(f"{path} has no {VOCAB_FILE}: not a CTC checkpoint with a tokenizer")
        try:
            tokens = json.loads(vocab_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise VocabularyError(f"{vocab_file}: not valid JSON ({exc})") from None
        if not isinstance(tokens, dict) or not tokens:
            raise VocabularyError(f"{vocab_file}: expected a JSON object of token -> id")
        settings: dict[str, Any] = {}
        for name in (SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE):   # the config wins
            file = path / name
            if file.is_file():
                settings.update(json.loads(file.read_text(encoding="utf-8")))
        tokens = {**tokens, **_added_tokens(path, settings, tokens)}
        blank = _token(settings.get("pad_token")) or PAD_TOKEN
        delimiter = _token(settings.get("word_delimiter_token")) or WORD_DELIMITER
        special = [_token(settings.get(key)) for key in _SPECIAL_KEYS]
        for key in ("additional_special_tokens", "extra_special_tokens"):
            extra = settings.get(key) or []
            special += [_token(t) for t in (extra.values() if isinstance(extra, dict) else extra)]
        if not settings:   # a bare vocab.json: wav2vec2's special tokens
            special = list(SPECIAL_TOKENS)
        kept = tuple(dict.fromkeys(t for t in special if t and t in tokens and t not in (blank, delimiter)))
        return cls(tokens=tokens, blank=blank, word_delimiter=delimiter, special=kept)

    def save_to_dir(self, path: str | Path) -> None:
        """Write vocab.json + a tokenizer_config.json holding what load_from_dir reads."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / VOCAB_FILE).write_text(json.dumps(self.tokens, ensure_ascii=False, indent=0), encoding="utf-8")
        (path / TOKENIZER_CONFIG_FILE).write_text(json.dumps({
            "pad_token": self.blank, "word_delimiter_token": self.word_delimiter,
            "additional_special_tokens": list(self.special)}, ensure_ascii=False, indent=2), encoding="utf-8")
