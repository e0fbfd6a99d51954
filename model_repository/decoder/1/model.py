"""Triton python model: CTC decoding, greedy or beam+LM by config (w2v_triton.serving.ctc_decoding).

Inputs LOGITS [B, T, V], LOGIT_LENGTHS [B] and, optionally, HOTWORDS [B, 1] (comma-separated
words, beam mode only) and PROMPT [B, 1] (text whose words the LM lacks join the hotwords);
outputs TRANSCRIPT [B, 1] and WORD_TIMESTAMPS [B, 1] (JSON), the latter computed only when requested.
"""
from __future__ import annotations  # the annotations name Triton's module: strings, never evaluated

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.serving.triton_inputs import required_input
from w2v_triton.serving.typing import AnyArray
from w2v_triton.serving.vocabulary import Vocabulary


def _strings(values: Iterable[str]) -> AnyArray:
    return np.array([[v.encode("utf-8")] for v in values], dtype=np.object_)


def _rows(request: pb_utils.InferenceRequest, name: str, batch: int) -> list[Any]:
    """An optional [B, 1] (or one row for all) string input as one value per row; None when absent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return [None] * batch
    rows = tensor.as_numpy().reshape(-1)
    return list(np.repeat(rows, batch) if rows.size == 1 and batch > 1 else rows)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        model_dir = Path(args["model_repository"])
        # A missing LM, an unreadable LM or an LM/vocabulary case mismatch raises
        # DecoderConfigError here: the model (and the server) fails to load, with the message.
        self.decoder = CTCDecoder(Vocabulary.load_from_dir(model_dir),
                                  DecoderConfig.from_parameters(params, base_dir=model_dir))

    def execute(self, requests: list[pb_utils.InferenceRequest]) -> list[pb_utils.InferenceResponse]:
        responses = []
        for request in requests:
            logits = required_input(request, spec.LOGITS)
            frames = required_input(request, spec.LOGIT_LENGTHS).reshape(-1)
            hotwords: list[list[str] | None] = [
                self.decoder.parse_hotwords(h) + self.decoder.prompt_hotwords(p)
                for h, p in zip(_rows(request, spec.HOTWORDS, len(logits)), _rows(request, spec.PROMPT, len(logits)),
                                strict=True)]
            decoded = self.decoder.decode_batch_full(
                [row[: int(n)] for row, n in zip(logits, frames, strict=True)], hotwords)
            outputs = [pb_utils.Tensor(spec.TRANSCRIPT, _strings(d.text for d in decoded))]
            if spec.WORD_TIMESTAMPS in request.requested_output_names():
                outputs.append(pb_utils.Tensor(spec.WORD_TIMESTAMPS, _strings(d.words_json() for d in decoded)))
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
