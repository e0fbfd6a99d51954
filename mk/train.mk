# Synthetic corpus + reference model trained from scratch (docs/reference-model.md).
#   make corpus                      espeak-ng English speech -> build/corpus/{train,dev,test_seen,test_unseen}.jsonl
#   make train-reference             train (resumes from build/train-reference/checkpoints), export to
#                                    build/train-reference/model (+ curves, eval); the committed model is untouched
#   make promote-reference           replace models/reference + docs/reference-training.png/-log.jsonl with that
#                                    model, then re-render the docs' tables (make docs-tables)
#   make eval-reference              greedy WER/CER of models/reference on the test splits + real speech
#   make train-reference NPROC=2     DDP over 2 processes (torchrun; gloo on CPU, nccl on GPU)
#   TRAIN_PRESET=auto|cpu|gpu        model + hyper-parameters (auto: gpu when CUDA is available);
#   on a GPU, as models/reference was trained:  make corpus CORPUS_N_TRAIN=40000 && make train-reference
#     TRAIN_STEPS=30000 TRAIN_MINUTES=8.45 TRAIN_ARGS="--anneal-by-time --bf16 --eval-every 250 --save-every 250"
#   a lent GPU machine without registry access: bash tools/gpu_session.sh .devcarry $OUT
CORPUS_DIR ?= build/corpus
CORPUS_N_TRAIN ?= 14000
CORPUS_WORKERS ?= $(shell nproc)
CORPUS_SEED ?= 1234
TRAIN_OUT ?= build/train-reference
# what `make train-reference` / `export-reference` write; only promote-reference touches the committed copy
TRAINED_REFERENCE ?= $(TRAIN_OUT)/model
TRAINED_PLOT ?= $(TRAIN_OUT)/reference-training.png
REFERENCE_OUT ?= models/reference
TRAIN_STEPS ?= 6600
TRAIN_MINUTES ?= 150
TRAIN_THREADS ?= 1
TRAIN_PRESET ?= auto
TRAIN_ARGS ?= --bf16 --eval-every 300 --save-every 100

.PHONY: corpus-deps corpus train-reference train-reference-tiny eval-reference export-reference promote-reference

CORPUS_DEPS = espeak-ng=espeak-ng /usr/share/games/fortunes=fortunes,fortunes-min
corpus-deps:  ## espeak-ng + fortunes text for the synthetic corpus (tools/system_deps.sh)
	@bash $(SYSTEM_DEPS) "corpus deps" $(CORPUS_DEPS)

corpus: venv corpus-deps  ## synthetic English speech corpus under $(CORPUS_DIR) (idempotent, parallel)
	$(PY) -m builders.corpus --out $(CORPUS_DIR) --n-train $(CORPUS_N_TRAIN) --workers $(CORPUS_WORKERS) \
	  --seed $(CORPUS_SEED)

train-reference: venv  ## train the 12-layer reference model on $(CORPUS_DIR) -> $(TRAINED_REFERENCE) (+ eval; promote-reference commits it)
	@test -f $(CORPUS_DIR)/train.jsonl || $(MAKE) corpus
	$(TORCH_LAUNCH) builders.train_reference --corpus $(CORPUS_DIR) --out $(TRAIN_OUT) \
	  --model-out $(TRAINED_REFERENCE) --max-steps $(TRAIN_STEPS) --max-time-min $(TRAIN_MINUTES) \
	  --threads $(TRAIN_THREADS) --preset $(TRAIN_PRESET) --plot $(TRAINED_PLOT) $(TRAIN_ARGS)

promote-reference: venv  ## replace models/reference and its docs plot + log with $(TRAINED_REFERENCE), re-render docs tables
	@test -f $(TRAINED_REFERENCE)/config.json && test -f $(TRAINED_REFERENCE)/eval_results.json || \
	  { echo "no trained, evaluated model in $(TRAINED_REFERENCE): run make train-reference first" >&2; exit 1; }
	rm -rf $(REFERENCE_OUT) && mkdir -p $(REFERENCE_OUT)
	cp -r $(TRAINED_REFERENCE)/. $(REFERENCE_OUT)/
	cp $(TRAINED_PLOT) docs/reference-training.png
	cp $(TRAIN_OUT)/train_log.jsonl docs/reference-training-log.jsonl
	$(MAKE) docs-tables

train-reference-tiny: venv  ## a few steps of a tiny model on a small corpus (smoke test, ~1 min)
	$(PY) -m builders.corpus --out build/corpus-tiny --n-train 40 --n-dev 4 --n-test-seen 4 --n-test-unseen 4
	$(PY) -m builders.train_reference --tiny --corpus build/corpus-tiny --out build/train-tiny \
	  --model-out build/reference-tiny --max-steps 20 --warmup 5 --eval-every 10 --save-every 10 \
	  --real-speech '' --no-progress

eval-reference: venv  ## greedy CER/WER of $(REFERENCE_OUT): test_seen, test_unseen, dev, real speech
	$(PY) -m builders.train_reference --eval-only --corpus $(CORPUS_DIR) --out $(TRAIN_OUT) \
	  --model-out $(REFERENCE_OUT) --threads $(TRAIN_THREADS)

export-reference: venv  ## export the latest checkpoint in $(TRAIN_OUT) to $(TRAINED_REFERENCE), then evaluate
	$(PY) -m builders.train_reference --export-only --corpus $(CORPUS_DIR) --out $(TRAIN_OUT) \
	  --model-out $(TRAINED_REFERENCE) --threads $(TRAIN_THREADS) --plot $(TRAINED_PLOT)
