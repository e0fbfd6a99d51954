"""Triton python model (decoupled, sequence batcher): streaming recognition (w2v_triton.serving.streaming).

Each request is one chunk of one stream (CORRID); START opens the stream, END closes it. A chunk
is answered at once (its partial and events); each segment it closed gets its final later, as a
response of its own on the same request, from the FinalWorker's thread (stream_finals.py), the
last with the final-response flag. END's one response waits for the stream's earlier finals and
carries its own. A bad chunk gets an error that ends its own stream only. Idle streams are freed
by a timer thread; the gauge `w2v_streaming_live_streams` (metrics port) counts live streams.
"""
from __future__ import annotations  # the annotations name Triton's module: strings, never evaluated

import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from w2v_triton.serving import spec
from w2v_triton.serving.stream_finals import FinalWorker
from w2v_triton.serving.streaming import ChunkRequest, StreamRegistry, StreamResult, build_recognizer
from w2v_triton.serving.triton_inputs import required_input
from w2v_triton.serving.typing import AnyArray


def _scalar(request: pb_utils.InferenceRequest, name: str) -> int:
    """A sequence-batcher control input (START, END, CORRID); 0 when absent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return 0 if tensor is None else int(tensor.as_numpy().reshape(-1)[0])


def _string(text: str) -> AnyArray:
    return np.array([[text.encode("utf-8")]], dtype=np.object_)


def _response(result: StreamResult) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse(output_tensors=[
        pb_utils.Tensor(spec.TRANSCRIPT, _string(result.text)),
        pb_utils.Tensor(spec.IS_FINAL, np.array([[result.is_final]], dtype=np.bool_)),
        pb_utils.Tensor(spec.STREAM_EVENTS, _string(result.events_json())),
    ])


def _error(exc: Exception) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))


FINAL_FLAG = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _send_finals(sender: pb_utils.InferenceResponseSender, result: StreamResult,
                 finals: list[dict[str, Any]] | Exception) -> None:
    """FinalWorker's thread: one response per segment final of `result`'s chunk, the last closing
    the request (or the error that failed them)."""
    if isinstance(finals, Exception):
        sender.send(_error(finals), flags=FINAL_FLAG)
        return
    for k, final in enumerate(finals):
        sender.send(_response(result.final_response(final)), flags=FINAL_FLAG if k == len(finals) - 1 else 0)


def _send_end(sender: pb_utils.InferenceResponseSender, result: StreamResult,
              finals: list[dict[str, Any]] | Exception) -> None:
    """FinalWorker's thread: END's one response, after the stream's earlier finals, with its own."""
    sender.send(_error(finals) if isinstance(finals, Exception) else _response(result.with_finals(finals)),
                flags=FINAL_FLAG)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
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
        self.finals = FinalWorker(recognizer)
        idle = recognizer.config.idle_seconds

        def evicted(ids: list[int]) -> None:
            for sid in ids:
                pb_utils.Logger.log_info(f"stream {sid} idle for more than {idle:g} s: freed")

        self.registry.start_reaper(on_evict=evicted)
        pb_utils.Logger.log_info(f"streaming model ready: {recognizer.config}")

    def execute(self, requests: list[pb_utils.InferenceRequest]) -> None:
        chunks = []
        for request in requests:
            audio = required_input(request, spec.AUDIO)
            hot = pb_utils.get_input_tensor_by_name(request, spec.HOTWORDS)
            chunks.append(ChunkRequest(
                stream_id=_scalar(request, spec.STREAM_CORRID),
                audio=audio.reshape(-1) if audio.ndim > 1 and audio.shape[0] == 1 else audio,
                start=bool(_scalar(request, spec.STREAM_START)), end=bool(_scalar(request, spec.STREAM_END)),
                hotwords=None if hot is None else hot.as_numpy().reshape(-1)[0]))
        for request, result in zip(requests, self.registry.handle(chunks), strict=True):
            sender = request.get_response_sender()
            if isinstance(result, Exception):
                sender.send(_error(result), flags=FINAL_FLAG)
            elif result.is_final:
                self.finals.submit(result.pending, partial(_send_end, sender, result))
            else:
                # the chunk's answer goes out now; the finals of the segments it closed follow
                sender.send(_response(result), flags=0 if result.pending else FINAL_FLAG)
                if result.pending:
                    self.finals.submit(result.pending, partial(_send_finals, sender, result))
        # decoupled: the responses go out through the senders; execute returns nothing

    def finalize(self) -> None:
        self.registry.stop_reaper()
        self.finals.stop()
