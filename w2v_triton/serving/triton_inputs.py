"""How the Triton python models (model_repository/*/1/model.py) read a request's required inputs.

Triton's `triton_python_backend_utils` exists only inside the python backend (tests put a stand-in,
tests/pb_utils_stub.py, in its place before they load a model.py), so it is imported where the
function runs: the serving package stays importable, and its import check passes, without it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from w2v_triton.serving.typing import AnyArray

if TYPE_CHECKING:
    from triton_python_backend_utils import InferenceRequest


def required_input(request: InferenceRequest, name: str) -> AnyArray:
    """A required input: config.pbtxt declares it, so Triton sends it with every request."""
    import triton_python_backend_utils as triton

    tensor = triton.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise triton.TritonModelException(f"a request without its required input {name}")
    return tensor.as_numpy()
