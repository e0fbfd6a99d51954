import numpy as np
import pytest

from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig, DecoderConfigError
from w2v_triton.serving.ctc_output import greedy_ids
from w2v_triton.serving.spec import BASE_960H_VOCAB as VOCAB


def one_hot_logits(tokens: list[str]) -> np.ndarray:
    logits = np.full((len(tokens), len(VOCAB)), -10.0, np.float32)
    for frame, token in enumerate(tokens):
        logits[frame, VOCAB[token]] = 10.0
    return logits


def test_greedy_merges_repeats_and_drops_blanks():
    assert greedy_ids(np.array([[0, 1], [0, 1], [1, 0], [0, 1]], np.float32), blank=0) == [1, 1]


def test_greedy_decodes_words():
    frames = ["<pad>", "H", "H", "I", "<pad>", "|", "|", "T", "<pad>", "T", "O", "|", "<pad>"]
    assert CTCDecoder(VOCAB).decode(one_hot_logits(frames)) == "HI TTO"


def test_special_tokens_never_appear_in_text():
    logits = one_hot_logits(["A", "<unk>", "B", "<s>", "</s>"])
    assert CTCDecoder(VOCAB).decode(logits) == "AB"


def test_empty_and_all_blank_logits():
    decoder = CTCDecoder(VOCAB)
    assert decoder.decode(np.zeros((0, len(VOCAB)), np.float32)) == ""
    assert decoder.decode(one_hot_logits(["<pad>"] * 5)) == ""


def test_wrong_vocab_width_is_an_error():
    with pytest.raises(ValueError, match="logits must be"):
        CTCDecoder(VOCAB).decode(np.zeros((3, 7), np.float32))


def test_beam_without_lm_agrees_with_greedy_on_confident_logits():
    frames = ["<pad>", "C", "A", "T", "|", "D", "O", "O", "<pad>", "O", "G"]
    beam = CTCDecoder(VOCAB, DecoderConfig(mode="beam", beam_width=8))
    assert beam.decode(one_hot_logits(frames)) == CTCDecoder(VOCAB).decode(one_hot_logits(frames)) == "CAT DOOG"


def test_config_from_triton_parameters(tmp_path):
    config = DecoderConfig.from_parameters({"mode": "beam", "beam_width": "5", "alpha": "0.7",
                                            "lm_path": ""}, base_dir=tmp_path)
    assert (config.mode, config.beam_width, config.alpha) == ("beam", 5, 0.7)
    assert DecoderConfig.from_parameters(config.to_parameters()) == config   # the builder's round trip
    # a key of another version is refused (the repository must be rebuilt), not silently ignored
    with pytest.raises(DecoderConfigError, match="unknown decoder parameter 'other'"):
        DecoderConfig.from_parameters({"mode": "beam", "other": "x"})


@pytest.mark.parametrize("params, message", [
    ({"mode": "viterbi"}, "mode"),
    ({"beam_width": "zero"}, "beam_width"),
    ({"beam_width": "0"}, "beam_width"),
    ({"mode": "beam", "lm_path": "missing.arpa"}, "does not exist"),
])
def test_bad_config_fails_loudly(tmp_path, params, message):
    with pytest.raises(DecoderConfigError, match=message):
        DecoderConfig.from_parameters(params, base_dir=tmp_path)


def test_vocabulary_without_blank_is_rejected():
    with pytest.raises(DecoderConfigError, match="blank"):
        CTCDecoder({"A": 0, "|": 1})
