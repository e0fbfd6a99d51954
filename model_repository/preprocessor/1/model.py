"""Triton python model: validate and normalise raw audio (w2v_triton.preprocessing)."""
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from w2v_triton import spec
from w2v_triton.preprocessing import InvalidAudio, preprocess


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        self.do_normalize = params["do_normalize"].lower() == "true"
        self.max_seconds = float(params.get("max_audio_seconds", "0"))

    def execute(self, requests):
        responses = []
        for request in requests:
            audio = pb_utils.get_input_tensor_by_name(request, spec.AUDIO).as_numpy()
            try:
                rows = [preprocess(row, self.do_normalize, self.max_seconds) for row in audio.reshape(audio.shape[0], -1)]
            except InvalidAudio as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)))
                continue
            lengths = np.array([[row.size] for row in rows], dtype=np.int64)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(spec.NORMALIZED_AUDIO, np.stack(rows)),
                pb_utils.Tensor(spec.AUDIO_LENGTHS, lengths),
            ]))
        return responses
