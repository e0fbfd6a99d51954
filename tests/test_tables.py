"""One markdown table writer (w2v_triton.eval.tables) for results, reports and docs: its format, and
every results writer reproduces its committed Markdown from its JSON (the docs' tables are checked the
same way in test_docs_tables.py)."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from benchmarks import audio_file, boot_budget, decoders, first_request, report, streaming
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"


def test_the_table_format():
    assert markdown_table(["a", "b"], [[1, 2.5], ["x", ""]]) == "| a | b |\n|---|---|\n| 1 | 2.5 |\n| x |  |"
    assert markdown_table(["a"], []) == "| a |\n|---|"
    assert markdown_table(["v"], [[1.25], [3]], lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)) == \
        "| v |\n|---|\n| 1.2 |\n| 3 |"


WRITERS: dict[str, Callable[[dict], str]] = {
    "cpu-2core-amd-epyc/audio-file-reference": audio_file.markdown,
    "cpu-2core-amd-epyc/gcp-boot-budget": boot_budget.markdown,
    "cpu-2core-amd-epyc/decoders-reference": decoders.markdown,
    "cpu-2core-amd-epyc/first-request": first_request.markdown,
    "cpu-2core-amd-epyc/streaming-reference": streaming.markdown,
    "cpu-2core-amd-epyc/bench-student-random-base": report.markdown,
    "cpu-2core-amd-epyc/bench-distilled-reference": report.markdown,
    "cpu-2core-amd-epyc/served-decoders-reference": report.markdown,
    "gpu-nvidia-h200/bench-gpu-inprocess-10s": report.markdown,
}


@pytest.mark.parametrize("stem", sorted(WRITERS))
def test_results_markdown_is_written_from_its_json(stem):
    data = json.loads((RESULTS / f"{stem}.json").read_text())
    assert WRITERS[stem](data) == (RESULTS / f"{stem}.md").read_text()
