"""CTC decoding of wav2vec2 logits: greedy, or beam search with an optional KenLM.

The Triton `decoder` model and the in-process pipeline build the same `CTCDecoder` from the
same parameters (`DecoderConfig.from_parameters`), so their transcripts agree.
Special tokens (<s>, </s>, <unk>) are dropped from the label set in every mode: an
untrained or weak model would otherwise spell them out.

Besides the text, every mode gives word timestamps (`Decoded.words`): greedy and flashlight from
the best path's character runs, pyctcdecode from its word frame spans; frames are converted to
seconds with spec.FRAME_STRIDE_SAMPLES / spec.SAMPLE_RATE. Each word also carries its confidence,
the mean log-probability per frame of the path's labels over its frames (pyctcdecode: of the
best label per frame, as it keeps no path). Beam mode takes per-request
hotwords (weight `hotword_weight`, natural log, added per hotword in the transcript); greedy mode
ignores them. Beam search runs in `config.backend`: flashlight-text (default with an LM,
ctc_flashlight.py; C++; hotwords through a per-request trie and LM wrapper) or pyctcdecode (its
hotword scorer); beam search without an LM runs in pyctcdecode. A text PROMPT adds hotwords too:
its words the LM does not know (`prompt_hotwords`); boosting the words the LM knows turned a
mismatched prompt into word substitutions (docs/decoding.md, "Hotwords in the flashlight backend").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.serving.ctc_incremental import FlashlightSegment, GreedySegment, RedecodeSegment, SegmentDecoder
from w2v_triton.serving.ctc_output import (
    SECONDS_PER_FRAME,
    Decoded,
    DecoderConfigError,
    WordTime,
    clean_text,
    greedy_decode,
    log_softmax,
    pause_pieces,
)
from w2v_triton.serving.long_audio import LongAudioConfig
from w2v_triton.serving.settings import parse_parameters, to_parameters, unknown_keys
from w2v_triton.serving.typing import AnyArray
from w2v_triton.serving.vocabulary import Vocabulary, VocabularyError

MODES = ("greedy", "beam")
_PROMPT_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")   # letters, apostrophes inside (DON'T, O'BRIEN)
BACKENDS = ("flashlight", "pyctcdecode")   # beam search engines (with an LM; without one: pyctcdecode)


@dataclass(frozen=True)
class DecoderConfig:
    mode: str = "greedy"
    beam_width: int = 32
    alpha: float = 0.5          # LM weight
    beta: float = 1.0           # word insertion bonus
    lm_path: str = ""           # ARPA or KenLM binary; empty = beam search without LM
    unigrams_path: str = ""     # one word per line
    hotword_weight: float = 10.0  # bonus per hotword (natural log; pyctcdecode's default), both backends
    backend: str = "flashlight"   # beam+LM search engine (ctc_flashlight.py), or "pyctcdecode"
    beam_prune_logp: float = -10.0  # drop beams this far (log) below the best one (both backends)
    token_min_logp: float = -5.0    # pyctcdecode: skip tokens below this log-prob in a frame
    max_prompt_words: int = 32      # a PROMPT's first distinct words considered (its out-of-LM ones boosted)
    # beam search over longer logits runs once per piece between pauses (0: never): what one
    # acoustic pass takes (and a stream's segment final) is searched whole
    split_above_seconds: float = LongAudioConfig.max_single_seconds
    split_pause_seconds: float = 0.3  # ... a pause this long (best label blank or word gap) cuts

    def to_parameters(self) -> dict[str, str]:
        """The decoder model's Triton parameters (what the repository builder renders)."""
        return to_parameters(self)

    @classmethod
    def from_parameters(cls, parameters: dict[str, str], base_dir: Path | None = None,
                        check_files: bool = True) -> DecoderConfig:
        """Build from Triton `parameters` (all strings); relative LM paths are taken from base_dir.
        An unknown key is an error (a repository rendered by another version: rebuild it)."""
        unknown = unknown_keys(parameters, {f.name for f in fields(cls)})
        if unknown:
            raise DecoderConfigError(
                f"unknown decoder parameter {unknown[0]!r}: rebuild the repository (`make build-models`)")
        values = parse_parameters(cls, parameters, DecoderConfigError)
        for key in ("lm_path", "unigrams_path"):
            if values.get(key) and base_dir is not None and not Path(values[key]).is_absolute():
                values[key] = str(base_dir / values[key])
        config = cls(**values)
        config.validate(check_files)
        return config

    def validate(self, check_files: bool = True) -> None:
        """Values that cannot work raise DecoderConfigError; with `check_files`, so do missing LM files
        (a repository builder renders names relative to the decoder folder: it checks values only)."""
        if self.mode not in MODES:
            raise DecoderConfigError(f"decoder mode {self.mode!r}: expected one of {MODES}")
        if self.backend not in BACKENDS:
            raise DecoderConfigError(f"decoder backend {self.backend!r}: expected one of {BACKENDS}")
        if self.beam_prune_logp >= 0 or self.token_min_logp >= 0:
            raise DecoderConfigError("beam_prune_logp and token_min_logp are log-probabilities: must be < 0")
        if self.max_prompt_words < 0:
            raise DecoderConfigError(f"max_prompt_words must be >= 0, got {self.max_prompt_words}")
        if self.split_above_seconds < 0 or self.split_pause_seconds <= 0:
            raise DecoderConfigError("split_above_seconds must be >= 0 (0: never split) and split_pause_seconds > 0")
        if self.beam_width < 1:
            raise DecoderConfigError(f"beam_width must be >= 1, got {self.beam_width}")
        if self.lm_path and self.mode != "beam":
            raise DecoderConfigError(f"lm_path is set but mode is {self.mode!r}: an LM needs mode 'beam'")
        if self.unigrams_path and not self.lm_path:
            raise DecoderConfigError("unigrams_path given without lm_path")
        if check_files:
            for key in ("lm_path", "unigrams_path"):
                path = getattr(self, key)
                if path and not Path(path).is_file():
                    raise DecoderConfigError(f"decoder {key} {path} does not exist (build it with `make lm`)")


def prompt_words(prompt: str | bytes | None) -> list[str]:
    """The distinct words of a text prompt in order, upper-cased: runs of letters with apostrophes
    inside; digits and punctuation separate words ("GPT-3" -> GPT, "O'Brien's" -> O'BRIEN'S)."""
    if isinstance(prompt, bytes):
        prompt = prompt.decode("utf-8", errors="replace")
    return list(dict.fromkeys(w.upper() for w in _PROMPT_WORD.findall(prompt or "")))


class Labels:
    """Vocabulary columns the decoder keeps, and their text (blank -> '', delimiter -> ' ');
    special tokens (<s>, </s>, <unk>, ...) are dropped."""

    def __init__(self, vocab: Vocabulary | dict[str, int]) -> None:
        try:
            vocabulary = vocab if isinstance(vocab, Vocabulary) else Vocabulary(dict(vocab))
        except VocabularyError as exc:
            raise DecoderConfigError(str(exc)) from None
        by_id = sorted(vocabulary.tokens.items(), key=lambda item: item[1])
        spelled = [(i, vocabulary.text_of(tok)) for tok, i in by_id]
        self.keep = np.array([i for i, text in spelled if text is not None])
        self.text = [text for _, text in spelled if text is not None]
        self.blank = self.text.index("")
        self.vocab_size = vocabulary.size
        # None when the vocabulary has no cased letters; LM words and hotwords are matched to this case
        self.upper_case = vocabulary.upper_case

    def select(self, logits: AnyArray) -> AnyArray:
        if logits.ndim != 2 or logits.shape[1] != self.vocab_size:
            raise ValueError(f"logits must be [frames, {self.vocab_size}], got {list(logits.shape)}")
        return logits[:, self.keep]


class CTCDecoder:
    """Decode [frames, vocab] logits into text, greedy or by beam search (config.backend:
    flashlight-text or pyctcdecode; both take per-request hotwords)."""

    def __init__(self, vocab: Vocabulary | dict[str, int], config: DecoderConfig | None = None) -> None:
        self.config = config or DecoderConfig()
        self.config.validate()
        self.labels = Labels(vocab)
        self._beam = None   # pyctcdecode backend
        self._fast = None   # flashlight backend (ctc_flashlight.py)
        self.lm_words: frozenset[str] = frozenset()   # what a prompt's words are checked against
        # flashlight only with an LM: without one its lexicon-free search was slower than pyctcdecode
        # and no better than greedy on the reference model (docs/decoding.md)
        if self.config.mode == "beam" and self.config.backend == "flashlight" and self.config.lm_path:
            from w2v_triton.serving.ctc_flashlight import FlashlightBeam
            source, words = self._lm_words()
            self._check_lm_case(source, words)
            self.lm_words = frozenset(words)
            self._fast = FlashlightBeam(self.labels.text, self.labels.blank, self.config, words)
        elif self.config.mode == "beam":
            self._beam = self._build_beam_decoder()

    def _lm_words(self) -> tuple[str, list[str]]:
        """(source, words) of the LM vocabulary: the unigram file, else an ARPA's 1-grams."""
        if self.config.unigrams_path:
            path = self.config.unigrams_path
            return path, [w for w in Path(path).read_text().split() if w]
        if self.config.lm_path and not self.config.lm_path.endswith(".bin"):
            from w2v_triton.serving.lm.arpa import NotArpaError, arpa_info
            try:
                return self.config.lm_path, arpa_info(self.config.lm_path)[1]
            except (NotArpaError, UnicodeDecodeError, ValueError, OSError) as exc:
                raise DecoderConfigError(f"cannot read LM {self.config.lm_path}: {exc}") from None
        return "", []

    def _check_lm_case(self, source: str, words: list[str]) -> None:
        """An LM whose words are in the other case than the vocabulary never matches: refuse it."""
        vocab_upper = self.labels.upper_case
        if not words or vocab_upper is None:
            return
        cased = [w for w in words if w.upper() != w.lower() and not w.startswith("<")]
        if not cased:
            return
        wrong = sum(1 for w in cased if (w.islower() if vocab_upper else w.isupper()))
        if wrong > len(cased) // 2:
            lm_case, vocab_case = ("lower", "upper") if vocab_upper else ("upper", "lower")
            raise DecoderConfigError(
                f"{source}: LM words are {lm_case} case but the acoustic model's vocabulary is "
                f"{vocab_case} case ({wrong} of {len(cased)} words); rebuild the LM with "
                f"`make lm LM_ARGS=--case={vocab_case}`")

    def _build_beam_decoder(self) -> Any:
        from pyctcdecode.decoder import build_ctcdecoder

        if self.config.lm_path:
            # pyctcdecode's LM engine; pyctcdecode imports it only optionally, so it is named here
            # (the server image's import check follows this import)
            import kenlm  # noqa: F401

        source, words = self._lm_words()
        self._check_lm_case(source, words)
        self.lm_words = frozenset(words)
        unigrams = words if self.config.unigrams_path else None
        try:
            return build_ctcdecoder(
                self.labels.text, kenlm_model_path=self.config.lm_path or None, unigrams=unigrams,
                alpha=self.config.alpha, beta=self.config.beta)
        except Exception as exc:
            raise DecoderConfigError(f"cannot build the beam-search decoder: {exc}") from exc

    def set_search(self, alpha: float | None = None, beta: float | None = None,
                   beam_width: int | None = None) -> None:
        """Change alpha/beta/beam width without reloading the LM (used by the tuner)."""
        changes: dict[str, Any] = {k: v for k, v in (("alpha", alpha), ("beta", beta), ("beam_width", beam_width))
                                   if v is not None}
        self.config = replace(self.config, **changes)
        self.config.validate()
        if self._beam is not None and (alpha is not None or beta is not None):
            self._beam.reset_params(alpha=self.config.alpha, beta=self.config.beta)
        if self._fast is not None:
            self._fast.reconfigure(self.config)

    def parse_hotwords(self, raw: str | bytes | None) -> list[str]:
        """Comma-separated hotwords -> list, cased like the vocabulary; empty items dropped."""
        if raw is None:
            return []
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        words = [clean_text(w.strip()) for w in raw.split(",")]
        return [w.upper() if self.labels.upper_case else w.lower() for w in words if w]

    def prompt_hotwords(self, prompt: str | bytes | None) -> list[str]:
        """The hotwords a text prompt adds: of its first `max_prompt_words` distinct words, those the
        LM does not know (names, terms), cased like the vocabulary. The words the LM knows are left
        to it: boosting them made a prompt that does not match the audio replace acoustically
        similar words (docs/decoding.md). Without an LM every word counts; greedy mode takes none."""
        if self.config.mode != "beam" or not prompt:
            return []
        words = [w if self.labels.upper_case else w.lower()
                 for w in prompt_words(prompt)[:self.config.max_prompt_words]]
        return [w for w in words if w not in self.lm_words]

    def decode_full(self, logits: AnyArray, hotwords: list[str] | None = None) -> Decoded:
        """Text and word timestamps of one utterance's [frames, vocab] logits."""
        selected = self.labels.select(np.asarray(logits, dtype=np.float32))
        if self.config.mode != "beam":
            return greedy_decode(selected, self.labels.text, self.labels.blank)
        pieces = self.pieces(selected)
        if len(pieces) == 1:
            return self._beam_decode(selected, hotwords)
        return Decoded.joined([(a * SECONDS_PER_FRAME, self._beam_decode(selected[a:b], hotwords)) for a, b in pieces])

    def pieces(self, selected: AnyArray) -> list[tuple[int, int]]:
        """Frame ranges one beam search each: the whole utterance up to `split_above_seconds`, else
        its pieces between pauses. Why: one search over many minutes is one LM sentence across
        every pause (no </s> <s> between sentences): on a 600 s narration it gave 16.7 % WER, a
        search per piece between pauses of 0.3 s 12.7 % (docs/streaming.md, "Finals and offline")."""
        limit = self.config.split_above_seconds
        if not limit or selected.shape[0] * SECONDS_PER_FRAME <= limit:
            return [(0, selected.shape[0])]
        quiet = [self.labels.blank] + [i for i, t in enumerate(self.labels.text) if t == " "]
        return pause_pieces(selected.argmax(axis=-1), quiet, max(1, round(self.config.split_pause_seconds
                                                                          / SECONDS_PER_FRAME)))

    def _beam_decode(self, selected: AnyArray, hotwords: list[str] | None) -> Decoded:
        if self._fast is not None:
            return self._fast.decode(log_softmax(selected), hotwords or ())
        assert self._beam is not None   # beam mode builds one of the two backends
        log_probs = log_softmax(selected)
        beams = self._beam.decode_beams(
            log_probs, beam_width=self.config.beam_width, hotwords=hotwords or None,
            hotword_weight=self.config.hotword_weight, beam_prune_logp=self.config.beam_prune_logp,
            token_min_logp=self.config.token_min_logp)
        text, _, word_frames = beams[0][:3]
        # pyctcdecode keeps no per-frame path: a word's confidence is the best label's per frame
        best = log_probs.max(axis=-1)
        return Decoded(clean_text(text), [WordTime.from_frames(w, a, b, best) for w, (a, b) in word_frames])

    def begin_segment(self, hotwords: list[str] | None = None, lag_seconds: float = 1.0) -> SegmentDecoder:
        """A decoder for one segment of a stream, fed chunk by chunk (ctc_incremental.py): greedy,
        flashlight's incremental search (with the stream's hotwords), or pyctcdecode re-decoding
        the segment; `lag_seconds`: how far behind the last frame a beam's words become stable."""
        if self.config.mode != "beam":
            return GreedySegment(self)
        if self._fast is not None:
            return FlashlightSegment(self, self._fast.stream_search(hotwords or ()), lag_seconds)
        return RedecodeSegment(self, hotwords, lag_seconds)

    def decode(self, logits: AnyArray, hotwords: list[str] | None = None) -> str:
        return self.decode_full(logits, hotwords).text

    def decode_batch_full(self, batch: list[AnyArray],
                          hotwords: list[list[str] | None] | None = None) -> list[Decoded]:
        """One by one: measured faster than pyctcdecode's process pool on 2 cores (docs/decoding.md)."""
        hotwords = hotwords or [None] * len(batch)
        return [self.decode_full(logits, words) for logits, words in zip(batch, hotwords, strict=True)]

    def decode_batch(self, batch: list[AnyArray], hotwords: list[list[str] | None] | None = None) -> list[str]:
        return [d.text for d in self.decode_batch_full(batch, hotwords)]
