"""In-process reference pipeline: what the `asr` ensemble computes, without a server.

It reads the same rendered repository (configs, ONNX file, vocabulary) and calls the same
functions as the Triton models, so tests can demand identical transcripts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from w2v_triton import spec
from w2v_triton.acoustic import AcousticModel
from w2v_triton.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.preprocessing import preprocess, preprocess_file
from w2v_triton.repository import ONNX_FILE, model_parameters


class ReferencePipeline:
    """preprocess -> onnxruntime acoustic model -> CTC decoder, configured from a repository."""

    def __init__(self, repository: str | Path, intra_op_threads: int | None = None) -> None:
        repository = Path(repository)
        pre = model_parameters(repository, spec.PREPROCESSOR_MODEL)
        am = model_parameters(repository, spec.ACOUSTIC_MODEL)
        dec = model_parameters(repository, spec.DECODER_MODEL)
        self.do_normalize = pre["do_normalize"].lower() == "true"
        self.max_seconds = float(pre.get("max_audio_seconds") or spec.MAX_AUDIO_SECONDS)
        threads = int(am.get("intra_op_threads", am.get("intra_op_thread_count", "0")))
        self.acoustic = AcousticModel(
            repository / spec.ACOUSTIC_MODEL / "1" / am.get("onnx_file", ONNX_FILE),
            threads if intra_op_threads is None else intra_op_threads)
        decoder_dir = repository / spec.DECODER_MODEL
        vocab = json.loads((decoder_dir / "vocab.json").read_text())
        self.decoder = CTCDecoder(vocab, DecoderConfig.from_parameters(dec, base_dir=decoder_dir))

    def _preprocess(self, utterance: np.ndarray | bytes) -> np.ndarray:
        """float32 samples as the AUDIO input, bytes as the AUDIO_FILE input (an encoded file)."""
        if isinstance(utterance, (bytes, bytearray, memoryview)):
            return preprocess_file(bytes(utterance), self.do_normalize, self.max_seconds)
        return preprocess(utterance, self.do_normalize, self.max_seconds)

    def logits(self, utterances: list[np.ndarray | bytes]) -> list[np.ndarray]:
        return self.acoustic.run([self._preprocess(u) for u in utterances])

    def transcribe_batch(self, utterances: list[np.ndarray | bytes]) -> list[str]:
        return self.decoder.decode_batch(self.logits(utterances))

    def transcribe(self, audio: np.ndarray | bytes) -> str:
        """Transcript of float32 mono 16 kHz samples, or of an encoded file's bytes."""
        return self.transcribe_batch([audio])[0]
