"""CTC beam search by flashlight-text (C++; the engine behind torchaudio's CTC decoder).

Why: pyctcdecode's Python beam loop dominated served beam+LM time (docs/decoding.md).
With a word LM, flashlight's *lexicon* decoder searches a trie of the LM's words (spelled in
the acoustic labels, each ending with the word delimiter) and scores each finished word with
KenLM; without an LM, its lexicon-free decoder with a zero LM is a plain CTC beam search.
(The lexicon-free decoder with an LM scores every token, so it needs a character LM.)

Scales match pyctcdecode's, so alpha/beta mean the same in both backends: the LM weight is
alpha times the natural-log LM score (KenLM gives log10), beta is added once per word.
Only lexicon words are emitted (pyctcdecode also allows out-of-LM words at a penalty), and
there are no hotwords: `CTCDecoder` sends requests with hotwords to pyctcdecode.
"""
from __future__ import annotations

import math

from typing import TYPE_CHECKING, Any

import numpy as np

from w2v_triton.serving.ctc_output import Decoded, DecoderConfigError, greedy_decode
from w2v_triton.serving.typing import AnyArray

if TYPE_CHECKING:   # a type only: ctc_decoding imports this module
    from w2v_triton.serving.ctc_decoding import DecoderConfig

LN10 = math.log(10.0)
_BLANK, _SIL = "<blank>", "|"


class FlashlightBeam:
    """One flashlight decoder over the kept labels (`Labels.text`), built once per instance."""

    def __init__(self, text: list[str], blank: int, config: DecoderConfig, words: list[str]) -> None:
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            LexiconFreeDecoder,
            LexiconFreeDecoderOptions,
            SmearingMode,
            Trie,
            ZeroLM,
        )
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        self._api = (CriterionType, LexiconDecoder, LexiconDecoderOptions, LexiconFreeDecoder,
                     LexiconFreeDecoderOptions)
        self.text, self.blank = text, blank
        self.sil = text.index(" ")
        tokens = [_BLANK if t == "" else _SIL if t == " " else t for t in text]
        self.config = config
        self.trie = None
        if config.lm_path:
            if not words:
                raise DecoderConfigError(f"{config.lm_path}: the flashlight backend needs the LM's word list "
                                         "(unigrams_path; `make lm` writes unigrams.txt)")
            spell = {t: i for i, t in enumerate(text) if len(t) == 1 and t != " "}
            kept = [w for w in dict.fromkeys(words) if w and not w.startswith("<") and all(c in spell for c in w)]
            if not kept:
                raise DecoderConfigError(f"{config.lm_path}: no LM word can be spelled with the acoustic labels")
            self.word_dict = Dictionary(kept + ["<unk>"])
            try:
                self.lm = KenLM(config.lm_path, self.word_dict)
            except Exception as exc:   # flashlight raises RuntimeError/ValueError from C++
                raise DecoderConfigError(f"flashlight cannot load LM {config.lm_path}: {exc}") from exc
            self.trie = Trie(len(tokens), self.sil)
            start = self.lm.start(False)
            for idx, word in enumerate(kept):
                _, score = self.lm.score(start, idx)
                self.trie.insert([spell[c] for c in word] + [self.sil], idx, score)
            self.trie.smear(SmearingMode.MAX)
            self.unk = self.word_dict.get_index("<unk>")
        else:
            self.lm = ZeroLM()
        self._decoder = self._build()

    def _build(self) -> Any:
        CriterionType, LexiconDecoder, LexiconDecoderOptions, LexiconFreeDecoder, LexiconFreeDecoderOptions = self._api
        c = self.config
        threshold = -c.beam_prune_logp
        if self.trie is not None:
            opts = LexiconDecoderOptions(
                beam_size=c.beam_width, beam_size_token=len(self.text), beam_threshold=threshold,
                lm_weight=c.alpha * LN10, word_score=c.beta, unk_score=-math.inf, sil_score=0.0,
                log_add=False, criterion_type=CriterionType.CTC)
            return LexiconDecoder(opts, self.trie, self.lm, self.sil, self.blank, self.unk, [], False)
        opts = LexiconFreeDecoderOptions(
            beam_size=c.beam_width, beam_size_token=len(self.text), beam_threshold=threshold,
            lm_weight=0.0, sil_score=0.0, log_add=False, criterion_type=CriterionType.CTC)
        return LexiconFreeDecoder(opts, self.lm, self.sil, self.blank, [])

    def reconfigure(self, config: DecoderConfig) -> None:
        """New alpha/beta/beam width/pruning: a new search object over the same LM and trie."""
        self.config = config
        self._decoder = self._build()

    def decode(self, log_probs: AnyArray) -> Decoded:
        """Best hypothesis of [frames, labels] log-probabilities, with word timestamps."""
        emissions = np.ascontiguousarray(log_probs, dtype=np.float32)
        frames, n_tokens = emissions.shape
        if frames == 0:
            return Decoded("")
        best = self._decoder.decode(emissions.ctypes.data, frames, n_tokens)[0]
        # tokens: one label per frame, padded with a leading and trailing silence
        path = np.asarray(best.tokens[1:frames + 1], dtype=np.int64)
        onehot = np.full((frames, n_tokens), -1.0, np.float32)
        onehot[np.arange(frames), path] = 0.0
        return greedy_decode(onehot, self.text, self.blank)
