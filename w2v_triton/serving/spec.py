"""The one source of truth for names, shapes, vocabulary and audio format.

Builders, Triton configs (generated from templates), the client, the in-process
reference pipeline and the tests all import these constants; nothing else spells
a tensor name or a sample rate.
"""
from __future__ import annotations

# --- audio -----------------------------------------------------------------
SAMPLE_RATE = 16_000
# The wav2vec2 conv front-end has a receptive field of 400 samples (25 ms):
# anything shorter yields zero frames, so it is rejected up front.
MIN_SAMPLES = 400
# Total stride of the conv front-end: one logit frame per 320 samples (20 ms).
FRAME_STRIDE_SAMPLES = 320
# Longest utterance the service accepts (AUDIO samples or a decoded AUDIO_FILE); the
# preprocessor's `max_audio_seconds` parameter overrides it. A few kilobytes of FLAC can
# decode to hours of samples: the limit is checked before the whole file is decoded.
MAX_AUDIO_SECONDS = 600.0
# Sample rates an encoded file may declare (AUDIO_FILE, the client's files, the gateway's uploads).
# 8 kHz is narrowband telephony (G.711), the lowest rate any microphone path in use records; 192 kHz
# is the highest that audio interfaces record (USB Audio Class 2, 24 bit / 192 kHz). A header outside
# them is broken or hostile: a 100-byte WAV declaring 1 Hz would otherwise be resampled into
# 100 s of audio, and a 384 kHz file costs twice 192 kHz's decoding for nothing speech needs.
MIN_FILE_SAMPLE_RATE = 8_000
MAX_FILE_SAMPLE_RATE = 192_000
# Epsilon of Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm.
NORMALIZE_EPS = 1e-7

# --- Triton model names -----------------------------------------------------
ENSEMBLE_MODEL = "asr"
PREPROCESSOR_MODEL = "preprocessor"
ACOUSTIC_MODEL = "acoustic_model"
DECODER_MODEL = "decoder"
STREAMING_MODEL = "streaming_asr"    # decoupled, sequence-batched: chunks in, partials out

# --- tensor names (ensemble and composing models) ---------------------------
AUDIO = "AUDIO"                      # float32 [batch, samples], raw mono 16 kHz
AUDIO_FILE = "AUDIO_FILE"            # bytes   [batch, 1] an encoded file (WAV/FLAC/OGG/MP3); instead of AUDIO
TRANSCRIPT = "TRANSCRIPT"            # bytes   [batch, 1]
NORMALIZED_AUDIO = "NORMALIZED_AUDIO"  # float32 [batch, samples]
AUDIO_LENGTHS = "AUDIO_LENGTHS"      # int64   [batch] valid samples per row
LOGITS = "LOGITS"                    # float32 [batch, frames, vocab]
LOGIT_LENGTHS = "LOGIT_LENGTHS"      # int64   [batch] valid frames per row
HOTWORDS = "HOTWORDS"                # bytes   [batch, 1] optional, comma separated
PROMPT = "PROMPT"                    # bytes   [batch, 1] optional text: its words the LM lacks become hotwords
WORD_TIMESTAMPS = "WORD_TIMESTAMPS"  # bytes   [batch, 1] optional JSON
IS_FINAL = "IS_FINAL"                # bool    [batch, 1] streaming: the stream's last response
STREAM_EVENTS = "EVENTS"             # bytes   [batch, 1] streaming: JSON events of a chunk (speech
                                     #         started/stopped, committed deltas, segment finals)
# Sequence-batcher controls of the streaming model (filled by Triton from the request's sequence
# id / sequence_start / sequence_end).
STREAM_START = "START"
STREAM_END = "END"
STREAM_CORRID = "CORRID"

# Largest batch the Triton models accept (dynamic batching groups up to this).
MAX_BATCH_SIZE = 16

# --- vocabulary of facebook/wav2vec2-base-960h -------------------------------
# Used to build offline checkpoints (random-base, tiny); a real checkpoint
# brings its own vocabulary, which the builders copy into the repository.
BASE_960H_VOCAB: dict[str, int] = {
    "<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4,
    "E": 5, "T": 6, "A": 7, "O": 8, "N": 9, "I": 10, "H": 11, "S": 12,
    "R": 13, "D": 14, "L": 15, "U": 16, "M": 17, "W": 18, "C": 19, "F": 20,
    "G": 21, "Y": 22, "P": 23, "B": 24, "V": 25, "K": 26, "'": 27, "X": 28,
    "J": 29, "Q": 30, "Z": 31,
}
PAD_TOKEN = "<pad>"          # the CTC blank
WORD_DELIMITER = "|"
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")

DEFAULT_HUB_MODEL = "facebook/wav2vec2-base-960h"
