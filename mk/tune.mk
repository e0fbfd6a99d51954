# Tune the beam decoder (alpha, beta, beam width) on a dev manifest, with the acoustic logits
# computed once; writes $(REPO)/decoder/tuning.json and re-renders $(REPO) with the best values.
#   make tune-lm DEV=build/corpus/dev.jsonl REPO=model_repository [TUNE_LM_DIR=build/lm]
#   make tune-lm DEV=... TUNE_ARGS="--alphas 0.3,0.6,1.0 --betas 0,1,2 --beam-widths 16,32"
# DEV defaults to build/corpus/dev.jsonl (the synthetic corpus' dev set, declared in the Makefile).
TUNE_LM_DIR ?=
TUNE_ARGS ?=

.PHONY: tune-lm
tune-lm: venv  ## grid-search LM alpha/beta on DEV=<manifest> for REPO; writes the chosen values into REPO
	$(PY) -m builders.tune_lm --repo $(REPO) $(if $(DEV),--dev $(DEV)) $(if $(TUNE_LM_DIR),--lm-dir $(TUNE_LM_DIR)) $(TUNE_ARGS)
