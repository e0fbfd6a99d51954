# Docs are rendered from results: every measured table in README.md and docs/*.md sits between
# `<!-- table: RENDERER from RESULTS_FILE -->` and `<!-- /table -->` (benchmarks/docs_tables.py).
#   make docs-tables          re-render every table from its results file
#   make docs-tables-check    fail when a doc's table differs from its file (tests/test_docs_tables.py)

.PHONY: docs-tables docs-tables-check
docs-tables: venv  ## re-render the measured tables in README.md and docs/*.md from their results files
	$(PY) -m benchmarks.docs_tables

docs-tables-check: venv  ## fail when a doc's table differs from what its results file renders
	$(PY) -m benchmarks.docs_tables --check

# The training curves in docs/ are plots of the committed JSONL logs (benchmarks/docs_plots.py PLOTS).
.PHONY: docs-plots
docs-plots: venv  ## re-plot docs/reference-training{,-cpu}.png from their committed JSONL logs
	$(PY) -m benchmarks.docs_plots
