# Synthetic corpus + reference model trained from scratch (docs/reference-model.md).
#   make corpus                      English speech (espeak-ng + flite voices, 3:1; CORPUS_SYNTHS=espeak is
#                                    the espeak-only corpus of the committed figures, file for file)
#                                    -> build/corpus/{train,dev,test_seen,test_unseen}.jsonl
#   make train-reference             train (resumes from build/train-reference/checkpoints), export to
#                                    build/train-reference/model (+ curves, eval); the committed model is untouched
#   make promote-reference           only if that model is better than models/reference on the same splits
#                                    (builders/promote_reference.py): replace models/reference (+ model card) and
#                                    docs/reference-training.png/-log.jsonl, then re-render the docs' tables;
#                                    otherwise change nothing and fail with the reason
#   make eval-reference              greedy WER/CER of models/reference on the test splits + real speech
#   make train-reference NPROC=2     DDP over 2 processes (torchrun; gloo on CPU, nccl on GPU)
#   TRAIN_PRESET=auto|cpu|gpu        model + hyper-parameters (auto: gpu when CUDA is available);
#   on a GPU, as models/reference was trained:  make corpus CORPUS_SYNTHS=espeak CORPUS_N_TRAIN=40000 && make train-reference
#     TRAIN_STEPS=30000 TRAIN_MINUTES=8.45 TRAIN_ARGS="--anneal-by-time --bf16 --eval-every 250 --save-every 250"
#   a lent GPU machine without registry access: the whole run in one call, tools/gpu/gpu_session.sh (its header)
CORPUS_DIR ?= build/corpus
CORPUS_N_TRAIN ?= 14000
CORPUS_WORKERS ?= $(shell nproc)
CORPUS_SEED ?= 1234
# synthesisers and their training shares (builders/corpus.py --synths); empty = the builder's default
CORPUS_SYNTHS ?=
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

# The corpus' text and every synthesiser it can speak with (w2v_triton/train/synthesizers.py names the
# same packages; tests/test_corpus.py checks that they agree). `make system-deps` (CI) installs them all,
# so every kind is tested.
CORPUS_DEPS = /usr/share/games/fortunes=fortunes,fortunes-min espeak-ng=espeak-ng flite=flite \
  festival=festival /usr/share/festival/voices/english/kal_diphone=festvox-kallpc16k \
  /usr/share/festival/voices/english/ked_diphone=festvox-kdlpc16k \
  /usr/share/festival/voices/us/cmu_us_slt_arctic_hts=festvox-us-slt-hts
corpus-deps:  ## the fortunes text + every corpus synthesiser: espeak-ng, flite, festival and its voices (tools/dev/system_deps.sh)
	@bash $(SYSTEM_DEPS) "corpus deps" $(CORPUS_DEPS)

corpus: venv  ## synthetic English speech corpus under $(CORPUS_DIR) (CORPUS_SYNTHS; a missing synthesiser is named at once: make corpus-deps)
	$(PY) -m builders.corpus --out $(CORPUS_DIR) --n-train $(CORPUS_N_TRAIN) --workers $(CORPUS_WORKERS) \
	  --seed $(CORPUS_SEED) $(if $(CORPUS_SYNTHS),--synths $(CORPUS_SYNTHS))

train-reference: venv  ## train the 12-layer reference model on $(CORPUS_DIR) -> $(TRAINED_REFERENCE) (+ eval; promote-reference commits it)
	@test -f $(CORPUS_DIR)/train.jsonl || $(MAKE) corpus
	$(TORCH_LAUNCH) builders.train_reference --corpus $(CORPUS_DIR) --out $(TRAIN_OUT) \
	  --model-out $(TRAINED_REFERENCE) --max-steps $(TRAIN_STEPS) --max-time-min $(TRAIN_MINUTES) \
	  --threads $(TRAIN_THREADS) --preset $(TRAIN_PRESET) --plot $(TRAINED_PLOT) $(TRAIN_ARGS)

promote-reference: venv  ## replace models/reference (+ card, docs plot, log, tables) with $(TRAINED_REFERENCE) only if it is better on $(CORPUS_DIR)'s test splits
	$(PY) -m builders.promote_reference --candidate $(TRAINED_REFERENCE) --corpus $(CORPUS_DIR) \
	  --reference $(REFERENCE_OUT) --train-log $(TRAIN_OUT)/train_log.jsonl --plot $(TRAINED_PLOT) \
	  --report $(TRAIN_OUT)/promotion.json
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
