"""Triton python model: decode, validate and normalise audio (w2v_triton.serving.preprocessing).

Each request carries exactly one of AUDIO (float32 mono 16 kHz samples, [B, samples]) or
AUDIO_FILE (the bytes of an encoded file, [B, 1]: decoded, down-mixed and resampled here).
Either way the output is NORMALIZED_AUDIO [B, T] (rows zero-padded to the longest) and
AUDIO_LENGTHS [B, 1]; unusable input is answered with one INVALID_ARG error.
"""
from __future__ import annotations  # the annotations name Triton's module: strings, never evaluated

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from w2v_triton.serving import spec
from w2v_triton.serving.preprocessing import InvalidAudio, PreprocessorSettings
from w2v_triton.serving.typing import AnyArray

ONE_INPUT = (f"send exactly one of {spec.AUDIO} (float32 mono {spec.SAMPLE_RATE} Hz samples) or "
             f"{spec.AUDIO_FILE} (the bytes of an encoded audio file)")


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = {k: v["string_value"] for k, v in json.loads(args["model_config"])["parameters"].items()}
        self.settings = PreprocessorSettings.from_parameters(params)

    def _rows(self, request: pb_utils.InferenceRequest) -> list[AnyArray]:
        audio = pb_utils.get_input_tensor_by_name(request, spec.AUDIO)
        encoded = pb_utils.get_input_tensor_by_name(request, spec.AUDIO_FILE)
        if audio is not None and encoded is None:
            samples = audio.as_numpy()
            return [self.settings.preprocess(row) for row in samples.reshape(samples.shape[0], -1)]
        if encoded is not None and audio is None:
            return [self.settings.preprocess_file(bytes(item)) for item in encoded.as_numpy().reshape(-1)]
        raise InvalidAudio(f"{'both inputs were sent' if audio is not None else 'no audio was sent'}: {ONE_INPUT}")

    def execute(self, requests: list[pb_utils.InferenceRequest]) -> list[pb_utils.InferenceResponse]:
        responses = []
        for request in requests:
            try:
                rows = self._rows(request)
            except InvalidAudio as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)))
                continue
            lengths = np.array([[row.size] for row in rows], dtype=np.int64)
            padded = np.zeros((len(rows), int(lengths.max())), dtype=np.float32)
            for i, row in enumerate(rows):   # files of one request differ in length
                padded[i, : row.size] = row
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(spec.NORMALIZED_AUDIO, padded),
                pb_utils.Tensor(spec.AUDIO_LENGTHS, lengths),
            ]))
        return responses
