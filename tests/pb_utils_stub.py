"""A small stand-in for Triton's `triton_python_backend_utils`, so the model.py adapters run in
unit tests without a server: their request regrouping and error paths are tested in
`make test-fast`, and the real server tests show the stand-in behaves like the real module."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np


class TritonError(Exception):
    INVALID_ARG = 3
    INTERNAL = 13

    def __init__(self, message: str, code: int = INTERNAL) -> None:
        super().__init__(message)
        self.code = code

    def message(self) -> str:
        return str(self)


class TritonModelException(Exception):
    pass


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class InferenceRequest:
    def __init__(self, inputs: dict[str, np.ndarray], requested_outputs: tuple[str, ...] = ()) -> None:
        self.inputs = {name: Tensor(name, value) for name, value in inputs.items()}
        self._requested = list(requested_outputs)

    def requested_output_names(self) -> list[str]:
        return self._requested


class InferenceResponse:
    def __init__(self, output_tensors: list[Tensor] | None = None, error: TritonError | None = None) -> None:
        self.outputs = {t.name(): t.as_numpy() for t in output_tensors or []}
        self.error = error

    def has_error(self) -> bool:
        return self.error is not None


class Logger:
    messages: list[str] = []

    @classmethod
    def log_info(cls, message: str) -> None:
        cls.messages.append(message)

    log_warn = log_error = log_verbose = log_info


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
    return request.inputs.get(name)


def module() -> ModuleType:
    stub = ModuleType("triton_python_backend_utils")
    for name in ("TritonError", "TritonModelException", "Tensor", "InferenceRequest", "InferenceResponse", "Logger",
                 "get_input_tensor_by_name"):
        setattr(stub, name, globals()[name])
    return stub


def load_model(repository: Path, model: str, instance_device_id: int = 0):
    """Import <repository>/<model>/1/model.py against the stand-in and initialize it as Triton
    would: model_config as JSON (the rendered config.pbtxt), repository and version."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    sys.modules["triton_python_backend_utils"] = module()
    path = Path(repository) / model / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(f"model_py_{model}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    config = text_format.Parse((Path(repository) / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    config_json = json_format.MessageToJson(config, preserving_proto_field_name=True,
                                            including_default_value_fields=True)
    instance = loaded.TritonPythonModel()
    instance.initialize({"model_config": config_json, "model_repository": str(Path(repository) / model),
                         "model_version": "1", "model_instance_device_id": str(instance_device_id)})
    return instance


__all__ = ["load_model", "InferenceRequest", "TritonError", "json"]
