"""Evaluation: WER, agreement, LM tuning, FLOPs, reports."""
