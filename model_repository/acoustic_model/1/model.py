"""Triton python model: the exported wav2vec2 in onnxruntime (w2v_triton.serving.acoustic)."""
from __future__ import annotations  # the annotations name Triton's module: strings, never evaluated

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import AcousticModel, AcousticSettings, pad_logits
from w2v_triton.serving.triton_inputs import required_input
from w2v_triton.serving.typing import AnyArray


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        settings = AcousticSettings.from_parameters({k: v["string_value"] for k, v in config["parameters"].items()})
        version_dir = Path(args["model_repository"]) / args["model_version"]
        # DEVICE=gpu without a GPU runtime raises DeviceUnavailable here: the load fails with that line
        self.model = AcousticModel.from_settings(version_dir, settings, int(args.get("model_instance_device_id") or 0))
        if settings.warmup:
            self.model.warmup()   # before Triton reports the model (and the server) ready
        pb_utils.Logger.log_info(f"acoustic model ready: runtime {settings.runtime} on {self.model.provider}")

    def execute(self, requests: list[pb_utils.InferenceRequest]) -> list[pb_utils.InferenceResponse]:
        rows: list[AnyArray] = []
        owners: list[int] = []
        for index, request in enumerate(requests):
            audio = required_input(request, spec.AUDIO)
            lengths = required_input(request, spec.AUDIO_LENGTHS).reshape(-1)
            for row, length in zip(audio.reshape(audio.shape[0], -1), lengths, strict=True):
                rows.append(row[: int(length)])
                owners.append(index)
        logits, frames = pad_logits(self.model.run(rows))  # length buckets, long audio windowed
        owner_of = np.array(owners)
        responses = []
        for index in range(len(requests)):
            mine = np.flatnonzero(owner_of == index)
            width = int(frames[mine].max())
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(spec.LOGITS, np.ascontiguousarray(logits[mine, :width])),
                pb_utils.Tensor(spec.LOGIT_LENGTHS, frames[mine].reshape(-1, 1).astype(np.int64)),
            ]))
        return responses
