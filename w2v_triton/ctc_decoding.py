"""CTC decoding of wav2vec2 logits: greedy, or beam search with an optional KenLM.

The Triton `decoder` model and the in-process pipeline build the same `CTCDecoder` from the
same parameters (`DecoderConfig.from_parameters`), so their transcripts agree.
Special tokens (<s>, </s>, <unk>) are dropped from the label set in every mode: an
untrained or weak model would otherwise spell them out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from w2v_triton.spec import PAD_TOKEN, SPECIAL_TOKENS, WORD_DELIMITER

MODES = ("greedy", "beam")
_SPACES = re.compile(r" +")


class DecoderConfigError(ValueError):
    """Decoder parameters or files that cannot work; fails the model load loudly."""


@dataclass(frozen=True)
class DecoderConfig:
    mode: str = "greedy"
    beam_width: int = 32
    alpha: float = 0.5          # LM weight
    beta: float = 1.0           # word insertion bonus
    lm_path: str = ""           # ARPA or KenLM binary; empty = beam search without LM
    unigrams_path: str = ""     # one word per line

    @classmethod
    def from_parameters(cls, parameters: dict[str, str], base_dir: Path | None = None) -> "DecoderConfig":
        """Build from Triton `parameters` (all strings); relative paths are taken from base_dir."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict = {}
        for key, raw in parameters.items():
            if key not in known:
                continue
            kind = known[key]
            try:
                values[key] = int(raw) if kind in ("int", int) else float(raw) if kind in ("float", float) else raw
            except ValueError as exc:
                raise DecoderConfigError(f"decoder parameter {key}={raw!r}: {exc}") from None
        for key in ("lm_path", "unigrams_path"):
            if values.get(key) and base_dir is not None and not Path(values[key]).is_absolute():
                values[key] = str(base_dir / values[key])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.mode not in MODES:
            raise DecoderConfigError(f"decoder mode {self.mode!r}: expected one of {MODES}")
        if self.beam_width < 1:
            raise DecoderConfigError(f"beam_width must be >= 1, got {self.beam_width}")
        for key in ("lm_path", "unigrams_path"):
            path = getattr(self, key)
            if path and not Path(path).is_file():
                raise DecoderConfigError(f"decoder {key} {path} does not exist (build it with `make lm`)")
        if self.unigrams_path and not self.lm_path:
            raise DecoderConfigError("unigrams_path given without lm_path")


class Labels:
    """Vocabulary columns the decoder keeps, and their text (blank -> '', '|' -> ' ')."""

    def __init__(self, vocab: dict[str, int]) -> None:
        if PAD_TOKEN not in vocab or WORD_DELIMITER not in vocab:
            raise DecoderConfigError(f"vocabulary needs {PAD_TOKEN!r} (CTC blank) and {WORD_DELIMITER!r}")
        by_id = sorted(vocab.items(), key=lambda item: item[1])
        self.keep = np.array([i for tok, i in by_id if tok == PAD_TOKEN or tok not in SPECIAL_TOKENS])
        tokens = [tok for tok, i in by_id if i in set(self.keep.tolist())]
        self.text = ["" if t == PAD_TOKEN else " " if t == WORD_DELIMITER else t for t in tokens]
        self.blank = self.text.index("")
        self.vocab_size = len(vocab)

    def select(self, logits: np.ndarray) -> np.ndarray:
        if logits.ndim != 2 or logits.shape[1] != self.vocab_size:
            raise ValueError(f"logits must be [frames, {self.vocab_size}], got {list(logits.shape)}")
        return logits[:, self.keep]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def clean_text(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def greedy_ids(logits: np.ndarray, blank: int) -> list[int]:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    best = logits.argmax(axis=-1)
    if best.size == 0:
        return []
    keep = np.ones(best.size, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(t) for t in best[keep] if t != blank]


class CTCDecoder:
    """Decode [frames, vocab] logits into text, greedy or by beam search (pyctcdecode)."""

    def __init__(self, vocab: dict[str, int], config: DecoderConfig | None = None) -> None:
        self.config = config or DecoderConfig()
        self.config.validate()
        self.labels = Labels(vocab)
        self._beam = self._build_beam_decoder() if self.config.mode == "beam" else None

    def _build_beam_decoder(self):
        from pyctcdecode import build_ctcdecoder

        unigrams = None
        if self.config.unigrams_path:
            unigrams = [w for w in Path(self.config.unigrams_path).read_text().split() if w]
        letters = {t for t in self.labels.text if len(t) == 1 and t.isalpha()}
        if unigrams and letters and all(t.isupper() for t in letters):
            lower = sum(1 for w in unigrams[:1000] if w.islower())
            if lower > len(unigrams[:1000]) // 2:
                raise DecoderConfigError(
                    f"{self.config.unigrams_path}: LM words are lower case but the vocabulary is "
                    "upper case; rebuild the LM with upper-casing (`make lm`)")
        try:
            return build_ctcdecoder(
                self.labels.text, kenlm_model_path=self.config.lm_path or None, unigrams=unigrams,
                alpha=self.config.alpha, beta=self.config.beta)
        except Exception as exc:
            raise DecoderConfigError(f"cannot build the beam-search decoder: {exc}") from exc

    def decode(self, logits: np.ndarray, hotwords: list[str] | None = None) -> str:
        selected = self.labels.select(np.asarray(logits, dtype=np.float32))
        if self._beam is None:
            return clean_text("".join(self.labels.text[i] for i in greedy_ids(selected, self.labels.blank)))
        return clean_text(self._beam.decode(
            log_softmax(selected), beam_width=self.config.beam_width, hotwords=hotwords or None))

    def decode_batch(self, batch: list[np.ndarray], hotwords: list[list[str] | None] | None = None) -> list[str]:
        hotwords = hotwords or [None] * len(batch)
        return [self.decode(logits, words) for logits, words in zip(batch, hotwords)]
