# Language model for the beam-search decoder (KenLM): lm.arpa + lm.bin (quantised trie; KenLM's
# build_binary is compiled once from the kenlm sdist into build/kenlm; needs g++). --no-binary: ARPA only.
#   make lm                                  CMU 3-gram from pocketsphinx (offline), upper case
#   make lm LM_SRC="--download librispeech-3gram-pruned"
#   make lm LM_SRC="--arpa my.arpa.gz" LM_OUT=build/lm-mine
# Re-running is cheap: builders/lm.py skips work when $(LM_OUT)/lm.json matches the inputs.
LM_SRC ?=
LM_OUT ?= build/lm
LM_ARGS ?=

.PHONY: lm lm-clean
lm: venv
	$(PY) -m builders.lm $(LM_SRC) --out $(LM_OUT) $(LM_ARGS)

lm-clean:
	rm -rf $(LM_OUT)
