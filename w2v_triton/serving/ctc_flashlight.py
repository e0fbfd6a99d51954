"""CTC beam search by flashlight-text (C++; the engine behind torchaudio's CTC decoder).

Why: pyctcdecode's Python beam loop dominated served beam+LM time (docs/decoding.md).
With a word LM, flashlight's *lexicon* decoder searches a trie of the LM's words (spelled in
the acoustic labels, each ending with the word delimiter) and scores each finished word with
KenLM; without an LM, its lexicon-free decoder with a zero LM is a plain CTC beam search.
(The lexicon-free decoder with an LM scores every token, so it needs a character LM.)

Scales match pyctcdecode's, so alpha/beta mean the same in both backends: the LM weight is
alpha times the natural-log LM score (KenLM gives log10), beta is added once per word.
Only lexicon words are emitted (pyctcdecode also allows out-of-LM words at a penalty).

Hotwords (per request or per stream): flashlight's KenLM wrapper maps its word dictionary once,
and its trie is shared by every request, so a request's hotwords get a search of their own
(`FlashlightBeam.search`): a trie that shares every node of the LM's trie except the paths of the
hotwords (copied, so other requests never see them; an out-of-LM hotword gets a path and a label
of its own), and a thin LM over the shared KenLM that adds `hotword_weight` (natural log, like
pyctcdecode's) to the score of each hotword. An out-of-LM hotword is scored as the LM's least
likely word (the lowest log10 probability of any LM word after the sentence start), in any context,
plus that bonus: as rare as a known word can be, never impossible (KenLM's own `<unk>` is -100
in an LM without one, such as the CMU LM, which no bonus could lift). Requests without hotwords
use the shared search.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from w2v_triton.serving.ctc_output import Decoded, DecoderConfigError, path_decode
from w2v_triton.serving.typing import AnyArray

if TYPE_CHECKING:   # a type only: ctc_decoding imports this module
    from w2v_triton.serving.ctc_decoding import DecoderConfig

LN10 = math.log(10.0)
_BLANK, _SIL = "<blank>", "|"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Search:
    """One flashlight search object and what it needs alive while it runs (its trie and LM; a
    Python-defined LM must outlive the C++ decoder that calls it). A stream keeps its own for its
    whole length: `decoder.decode_begin()`, `decode_step(...)`, `decode_end()`."""

    decoder: Any
    trie: Any
    lm: Any


@functools.cache
def _hotword_lm_class() -> Any:
    """The LM wrapper class (flashlight is imported only when this backend is used)."""
    from flashlight.lib.text.decoder import LM

    class HotwordLM(LM):  # type: ignore[misc]
        """The shared KenLM (its scores times `scale`), plus a bonus for the request's hotword
        labels. `boosted` maps a trie label to (the KenLM word whose state follows it, bonus in LM
        units, a fixed score instead of KenLM's or None: out-of-LM hotwords)."""

        def __init__(self, base: Any, boosted: dict[int, tuple[int, float, float | None]], scale: float) -> None:
            LM.__init__(self)
            self.base, self.boosted, self.scale = base, boosted, scale

        def start(self, start_with_nothing: bool) -> Any:
            return self.base.start(start_with_nothing)

        def score(self, state: Any, label: int) -> tuple[Any, float]:
            hot = self.boosted.get(label)
            if hot is None:
                if self.scale == 1.0:
                    return self.base.score(state, label)   # type: ignore[no-any-return]
                next_state, score = self.base.score(state, label)
                return next_state, score * self.scale
            word, bonus, fixed = hot
            next_state, score = self.base.score(state, word)
            return next_state, (score if fixed is None else fixed) * self.scale + bonus

        def finish(self, state: Any) -> tuple[Any, float]:
            next_state, score = self.base.finish(state)
            return next_state, score * self.scale

    return HotwordLM


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
            TrieNode,
            ZeroLM,
        )
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        self._api = (CriterionType, LexiconDecoder, LexiconDecoderOptions, LexiconFreeDecoder,
                     LexiconFreeDecoderOptions)
        self._trie_api = (Trie, TrieNode)
        self.text, self.blank = text, blank
        self.sil = text.index(" ")
        tokens = [_BLANK if t == "" else _SIL if t == " " else t for t in text]
        self.config = config
        self.trie: Any = None
        self.spell = {t: i for i, t in enumerate(text) if len(t) == 1 and t != " "}
        self.word_index: dict[str, int] = {}
        if config.lm_path:
            if not words:
                raise DecoderConfigError(f"{config.lm_path}: the flashlight backend needs the LM's word list "
                                         "(unigrams_path; `make lm` writes unigrams.txt)")
            spell = self.spell
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
            self.rarest = 0.0   # the lowest score of a word after the sentence start: out-of-LM hotwords get it
            for idx, word in enumerate(kept):
                _, score = self.lm.score(start, idx)
                self.rarest = min(self.rarest, score)
                self.trie.insert([spell[c] for c in word] + [self.sil], idx, score)
            self.trie.smear(SmearingMode.MAX)
            self.unk = self.word_dict.get_index("<unk>")
            self.word_index = {w: i for i, w in enumerate(kept)}
        else:
            self.lm = ZeroLM()
        self._shared = self._build()

    def _lm_weight(self) -> float:
        """The weight of LM scores (log10) in the search: alpha in natural-log units. With alpha 0 a
        hotword search still needs a non-zero weight to carry its bonus: 1, with the LM's own scores
        scaled to 0 by the hotword LM (only the trie's look-ahead then sees the LM)."""
        return self.config.alpha * LN10

    def _build(self, trie: Any = None, lm: Any = None, lm_weight: float | None = None) -> Search:
        CriterionType, LexiconDecoder, LexiconDecoderOptions, LexiconFreeDecoder, LexiconFreeDecoderOptions = self._api
        c = self.config
        threshold = -c.beam_prune_logp
        trie, lm = trie or self.trie, lm or self.lm
        if trie is not None:
            opts = LexiconDecoderOptions(
                beam_size=c.beam_width, beam_size_token=len(self.text), beam_threshold=threshold,
                lm_weight=self._lm_weight() if lm_weight is None else lm_weight, word_score=c.beta,
                unk_score=-math.inf, sil_score=0.0, log_add=False, criterion_type=CriterionType.CTC)
            return Search(LexiconDecoder(opts, trie, lm, self.sil, self.blank, self.unk, [], False), trie, lm)
        opts = LexiconFreeDecoderOptions(
            beam_size=c.beam_width, beam_size_token=len(self.text), beam_threshold=threshold,
            lm_weight=0.0, sil_score=0.0, log_add=False, criterion_type=CriterionType.CTC)
        return Search(LexiconFreeDecoder(opts, lm, self.sil, self.blank, []), None, lm)

    def reconfigure(self, config: DecoderConfig) -> None:
        """New alpha/beta/beam width/pruning: a new search object over the same LM and trie."""
        self.config = config
        self._shared = self._build()

    def stream_search(self, hotwords: Sequence[str] = ()) -> Search:
        """A search of its own for one segment of a stream: decode_begin / decode_step keep their
        state in the search object, so two streams cannot share one (w2v_triton.serving.ctc_incremental)."""
        search = self.search(hotwords)
        return self._build() if search is self._shared else search

    def search(self, hotwords: Sequence[str] = ()) -> Search:
        """The search for one request or stream: the shared one, or for `hotwords` (words or
        phrases, cased like the labels; phrases are boosted word by word, like pyctcdecode) one
        of its own (module docstring). Hotwords with a character the labels cannot spell are
        dropped: no search could emit them."""
        words = list(dict.fromkeys(w for phrase in hotwords for w in phrase.split()))
        spellable = [w for w in words if all(c in self.spell for c in w)]
        if len(spellable) < len(words):
            log.debug("hotwords the labels cannot spell, dropped: %s", sorted(set(words) - set(spellable)))
        if not spellable:
            return self._shared
        if self.trie is None:
            raise ValueError("hotwords need the lexicon search: a flashlight decoder with an LM")
        weight = self._lm_weight() or 1.0
        bonus = self.config.hotword_weight / weight
        scale = self._lm_weight() / weight   # 1, or 0 when alpha is 0 (see _lm_weight)
        start = self.lm.start(False)
        boosted: dict[int, tuple[int, float, float | None]] = {}
        entries = []
        for word in spellable:
            known = self.word_index.get(word)
            if known is None:   # a label of its own past <unk> (the last word); KenLM sees <unk>
                label, score = self.unk + 1 + len(boosted), self.rarest
                boosted[label] = (self.unk, bonus, self.rarest)
            else:
                label, score = known, self.lm.score(start, known)[1]
                boosted[label] = (known, bonus, None)
            entries.append(([self.spell[c] for c in word] + [self.sil], label, scale * score + bonus))
        lm = _hotword_lm_class()(self.lm, boosted, scale)
        return self._build(self._trie_with(entries), lm, weight)

    def _trie_with(self, entries: list[tuple[list[int], int, float]]) -> Any:
        """A trie sharing every node of the LM's trie but the paths of `entries` (spelling, label,
        score), which are copied and extended: the shared trie is never changed. Look-ahead scores
        along a copied path are raised to the entry's score, as smearing (max) would."""
        Trie, TrieNode = self._trie_api
        trie = Trie(len(self.text), self.sil)
        root = trie.search([])          # the root as a shared pointer (get_root() hands out a raw one)
        root.children = self.trie.search([]).children
        copies: dict[tuple[int, ...], Any] = {(): root}
        for spelling, label, score in entries:
            parent = root
            for depth in range(1, len(spelling) + 1):
                node = copies.get(tuple(spelling[:depth]))
                if node is None:
                    token = spelling[depth - 1]
                    children = parent.children
                    old = children.get(token)
                    node = TrieNode(token)
                    if old is None:
                        node.max_score = -math.inf
                    else:
                        node.children, node.labels, node.scores, node.max_score = (
                            old.children, old.labels, old.scores, old.max_score)
                    children[token] = node
                    parent.children = children
                    copies[tuple(spelling[:depth])] = node
                node.max_score = max(node.max_score, score)
                parent = node
            labels, scores = parent.labels, parent.scores
            if label in labels:
                scores[labels.index(label)] = score
            else:
                labels.append(label)
                scores.append(score)
            parent.labels, parent.scores = labels, scores
        return trie

    def decode(self, log_probs: AnyArray, hotwords: Sequence[str] = ()) -> Decoded:
        """Best hypothesis of [frames, labels] log-probabilities, with word timestamps."""
        emissions = np.ascontiguousarray(log_probs, dtype=np.float32)
        frames, n_tokens = emissions.shape
        if frames == 0:
            return Decoded("")
        search = self.search(hotwords)   # held here: its Python LM must outlive the call
        best = search.decoder.decode(emissions.ctypes.data, frames, n_tokens)[0]
        # tokens: one label per frame, padded with a leading and trailing silence
        path = np.asarray(best.tokens[1:frames + 1], dtype=np.int64)
        return path_decode(path, emissions[np.arange(frames), path], self.text, self.blank)
