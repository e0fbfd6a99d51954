"""Word and character error rates, one rule for every caller (training, variants, LM tuning, reports)."""
from __future__ import annotations

from collections.abc import Sequence


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    """Corpus WER and CER (jiwer) over the utterances with a non-empty reference; (0, 0) if none.
    Empty references are left out because jiwer cannot score them (no words to divide by);
    callers that compare two systems count differing transcripts separately."""
    import jiwer

    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r.strip()]
    if not pairs:
        return 0.0, 0.0
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))
