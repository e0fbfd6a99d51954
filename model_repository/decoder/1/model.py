"""Triton python model: CTC decoding, greedy or beam+LM by config (w2v_triton.ctc_decoding)."""
import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from w2v_triton import spec
from w2v_triton.ctc_decoding import CTCDecoder, DecoderConfig


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        model_dir = Path(args["model_repository"])
        vocab = json.loads((model_dir / "vocab.json").read_text())
        # A bad LM path or case mismatch raises here: the model fails to load, loudly.
        self.decoder = CTCDecoder(vocab, DecoderConfig.from_parameters(params, base_dir=model_dir))

    def execute(self, requests):
        responses = []
        for request in requests:
            logits = pb_utils.get_input_tensor_by_name(request, spec.LOGITS).as_numpy()
            frames = pb_utils.get_input_tensor_by_name(request, spec.LOGIT_LENGTHS).as_numpy().reshape(-1)
            texts = self.decoder.decode_batch([row[: int(n)] for row, n in zip(logits, frames)])
            transcript = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(spec.TRANSCRIPT, transcript)]))
        return responses
