"""The one markdown table writer of results files, reports and docs.

Why one, and why not tabulate: the benchmark reports, the docs' tables (benchmarks/docs_tables.py
renders them from results files and the tests compare them with the committed docs byte for byte),
the builders' summaries and the distillation report all write the same compact GitHub table;
tabulate's pipe format pads every column to its widest cell, which would rewrite every committed
table. Here with machine.py: what results carry besides their figures (machine, date, tables).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]], cell: Callable[[Any], str] = str) -> str:
    """`| a | b |`, `|---|---|`, then one line per row (each value through `cell`); no final newline."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def eval_table(results: dict[str, dict[str, Any]]) -> str:
    """An eval_results.json (builders/train_reference.py): greedy CER / WER per set, then per
    synthesiser of a set where the corpus had several."""
    rows: list[list[Any]] = []
    for name, r in results.items():
        rows.append([name, r["n"], f"{r['audio_hours']:.3f}" if "audio_hours" in r else "", f"{r['cer']:.3f}",
                     f"{r['wer']:.3f}"])
        rows += [[f"{name}: {synth}", g["n"], "", f"{g['cer']:.3f}", f"{g['wer']:.3f}"]
                 for synth, g in r.get("by_synth", {}).items()]
    return markdown_table(["set", "utterances", "hours", "greedy CER", "greedy WER"], rows)
