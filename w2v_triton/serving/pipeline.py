"""In-process reference pipeline: what the `asr` ensemble computes, without a server.

It reads the same rendered repository (configs, ONNX file, vocabulary) and calls the same
functions as the Triton models, so tests can demand identical transcripts.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path


from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import AcousticModel, AcousticSettings
from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.serving.preprocessing import PreprocessorSettings
from w2v_triton.serving.vocabulary import Vocabulary
from w2v_triton.serving.typing import AnyArray


def model_parameters(repository: Path, model: str) -> dict[str, str]:
    """The `parameters` map of a rendered config.pbtxt, as the python backend sees it. Here, not in
    settings.py: it parses with Triton's protobuf (tritonclient), which no Triton model imports."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    path = Path(repository) / model / "config.pbtxt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make build-models` first")
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    parameters = json_format.MessageToDict(config).get("parameters", {})
    return {key: value.get("stringValue", "") for key, value in parameters.items()}


def acoustic_settings(repository: Path) -> AcousticSettings:
    """The acoustic model's settings as the server reads them: the python platform's own
    parameters, or (native onnxruntime platform) the backend's thread count."""
    params = model_parameters(repository, spec.ACOUSTIC_MODEL)
    if "intra_op_thread_count" in params:   # platform onnxruntime_onnx
        return AcousticSettings(intra_op_threads=int(params["intra_op_thread_count"]), warmup=False)
    return AcousticSettings.from_parameters(params)


class ReferencePipeline:
    """preprocess -> acoustic model -> CTC decoder, configured from a repository: what the
    `asr` ensemble computes, with the same settings and the same functions."""

    def __init__(self, repository: str | Path, intra_op_threads: int | None = None) -> None:
        repository = Path(repository)
        pre = model_parameters(repository, spec.PREPROCESSOR_MODEL)
        dec = model_parameters(repository, spec.DECODER_MODEL)
        self.preprocessor = PreprocessorSettings.from_parameters(pre)
        settings = acoustic_settings(repository)
        if intra_op_threads is not None:
            settings = replace(settings, intra_op_threads=intra_op_threads)
        self.acoustic = AcousticModel.from_settings(repository / spec.ACOUSTIC_MODEL / "1", settings)
        decoder_dir = repository / spec.DECODER_MODEL
        self.decoder = CTCDecoder(Vocabulary.load_from_dir(decoder_dir),
                                  DecoderConfig.from_parameters(dec, base_dir=decoder_dir))

    def _preprocess(self, utterance: AnyArray | bytes) -> AnyArray:
        """float32 samples as the AUDIO input, bytes as the AUDIO_FILE input (an encoded file)."""
        if isinstance(utterance, (bytes, bytearray, memoryview)):
            return self.preprocessor.preprocess_file(bytes(utterance))
        return self.preprocessor.preprocess(utterance)

    def logits(self, utterances: list[AnyArray | bytes]) -> list[AnyArray]:
        return self.acoustic.run([self._preprocess(u) for u in utterances])

    def transcribe_batch(self, utterances: list[AnyArray | bytes]) -> list[str]:
        return self.decoder.decode_batch(self.logits(utterances))

    def transcribe(self, audio: AnyArray | bytes) -> str:
        """Transcript of float32 mono 16 kHz samples, or of an encoded file's bytes."""
        return self.transcribe_batch([audio])[0]
