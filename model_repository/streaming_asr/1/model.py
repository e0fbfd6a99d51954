"""Triton python model (decoupled, sequence batcher): streaming recognition (w2v_triton.serving.streaming).

Each request is one chunk of one stream (CORRID); START opens the stream, END closes it (the open
segment's final comes with that response). Every request gets exactly one response, sent with the
final-response flag: a bad chunk gets an error that ends its own stream only. Idle streams are
freed by a timer thread; the gauge `w2v_streaming_live_streams` (metrics port) counts live streams.
"""
import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from w2v_triton.serving import spec
from w2v_triton.serving.streaming import ChunkRequest, StreamRegistry, build_recognizer


def _scalar(request, name, default=0):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else tensor.as_numpy().reshape(-1)[0]


def _string(text):
    return np.array([[text.encode("utf-8")]], dtype=np.object_)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        files = Path(args["model_repository"]) / args["model_version"]   # acoustic/ and decoder/ files
        recognizer = build_recognizer(params, files, int(args.get("model_instance_device_id") or 0))
        # the family must outlive its metric: both are kept on the model
        self.family = pb_utils.MetricFamily(name="w2v_streaming_live_streams",
                                            description="live streams held by the streaming model",
                                            kind=pb_utils.MetricFamily.GAUGE)
        self.live = self.family.Metric(labels={"model": args["model_name"]})
        self.registry = StreamRegistry(recognizer, on_change=lambda n: self.live.set(n))
        idle = recognizer.config.idle_seconds
        self.registry.start_reaper(on_evict=lambda ids: [
            pb_utils.Logger.log_info(f"stream {sid} idle for more than {idle:g} s: freed") for sid in ids])
        pb_utils.Logger.log_info(f"streaming model ready: {recognizer.config}")

    def execute(self, requests):
        chunks = []
        for request in requests:
            audio = pb_utils.get_input_tensor_by_name(request, spec.AUDIO).as_numpy()
            hot = pb_utils.get_input_tensor_by_name(request, spec.HOTWORDS)
            chunks.append(ChunkRequest(
                stream_id=int(_scalar(request, spec.STREAM_CORRID)),
                audio=audio.reshape(-1) if audio.ndim > 1 and audio.shape[0] == 1 else audio,
                start=bool(_scalar(request, spec.STREAM_START)), end=bool(_scalar(request, spec.STREAM_END)),
                hotwords=None if hot is None else hot.as_numpy().reshape(-1)[0]))
        for request, result in zip(requests, self.registry.handle(chunks)):
            sender = request.get_response_sender()
            if isinstance(result, Exception):
                response = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(str(result), pb_utils.TritonError.INVALID_ARG))
            else:
                response = pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor(spec.TRANSCRIPT, _string(result.text)),
                    pb_utils.Tensor(spec.IS_FINAL, np.array([[result.is_final]], dtype=np.bool_)),
                    pb_utils.Tensor(spec.STREAM_EVENTS, _string(result.events_json())),
                ])
            sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        # decoupled: the responses went out through the senders; execute returns nothing

    def finalize(self):
        self.registry.stop_reaper()
