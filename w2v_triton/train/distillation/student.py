"""Build a shallower wav2vec2 CTC student from a teacher by keeping some of its layers.

Everything that is not a transformer layer is copied verbatim from the teacher: the conv
feature encoder, the feature projection, the masked-spec embedding, the positional conv
embedding, the encoder layer norm and the CTC head (`lm_head`). Student layer j is an exact
copy of teacher layer `kept[j]`. The student therefore has the teacher's vocabulary and
front-end and is consumed unchanged by the builders (`make build-models MODEL=<dir>`).

Layer indices here are 0-based transformer layer indices (teacher layer 0 .. L-1).
"""
from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from transformers import Wav2Vec2ForCTC

if TYPE_CHECKING:
    from w2v_triton.train.distillation.width_pruning import TransformerWidth

STRATEGIES = ("first", "last", "even", "explicit")
# Families whose encoder layers are independent copies (a student keeps any subset). WavLM's
# relative position bias lives in layer 0 only and data2vec-audio is untested here: refused.
STUDENT_FAMILIES = ("wav2vec2", "hubert")
# wav2vec2.encoder.layers.<i>.<rest>; does not match feature_extractor.conv_layers.<i>.
_LAYER_KEY = re.compile(r"^(?P<head>(?:.*\.)?encoder\.layers\.)(?P<idx>\d+)\.(?P<rest>.+)$")
STUDENT_INFO = "student_info.json"
# What a processor (feature extractor + CTC tokenizer) consists of; only these are copied
# (not the teacher's README, eval results or training summary).
PROCESSOR_FILES = {"vocab.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.json", "preprocessor_config.json", "processor_config.json",
                   "feature_extractor_config.json", "chat_template.json"}


def parse_layers(text: str | None) -> list[int] | None:
    """"0,2,4" -> [0, 2, 4] (command-line layer and width lists); None for an empty value."""
    if not text:
        return None
    return [int(x) for x in text.replace(" ", "").split(",") if x != ""]


def parse_conv_channels(text: str | None) -> int | list[int] | None:
    """"256" -> 256 (every conv layer); "512,256,256,256,256,256,256" -> one width per layer."""
    widths = parse_layers(text)
    if widths is None:
        return None
    return widths[0] if len(widths) == 1 else widths


def check_student_family(model_type: str) -> None:
    """Students (layer copying, front-end pruning, distillation) exist for STUDENT_FAMILIES only."""
    if model_type not in STUDENT_FAMILIES:
        raise ValueError(f"students can be built from {', '.join(STUDENT_FAMILIES)} teachers, not "
                         f"{model_type!r}: its layers cannot be copied independently here")


def select_layers(num_teacher_layers: int, num_student_layers: int | None = None,
                  strategy: str = "first", layers: list[int] | None = None) -> list[int]:
    """Return the sorted 0-based teacher layers the student keeps.

    first     layers 0..k-1 (the student is the teacher's bottom k layers)
    last      layers L-k..L-1
    even      k layers evenly spaced over [0, L-1], both ends included
              (round(linspace(0, L-1, k)); 12 -> 6 keeps [0, 2, 4, 7, 9, 11]), so the student
              keeps the layer next to the CNN features and the layer under the CTC head
    explicit  exactly `layers` (any order / duplicates are rejected)
    """
    L = int(num_teacher_layers)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown layer strategy {strategy!r}; choose one of {STRATEGIES}")
    if strategy == "explicit":
        if not layers:
            raise ValueError("strategy 'explicit' needs a list of layers")
        kept = [int(i) for i in layers]
        if num_student_layers is not None and len(kept) != int(num_student_layers):
            raise ValueError(f"{len(kept)} explicit layers given but num_layers={num_student_layers}")
    else:
        if layers:
            raise ValueError(f"layers={layers} given with strategy {strategy!r}; use 'explicit'")
        if num_student_layers is None:
            raise ValueError(f"strategy {strategy!r} needs num_layers")
        k = int(num_student_layers)
        if not 1 <= k <= L:
            raise ValueError(f"num_layers must be in 1..{L}, got {k}")
        if strategy == "first":
            kept = list(range(k))
        elif strategy == "last":
            kept = list(range(L - k, L))
        else:  # even
            kept = [0] if k == 1 else [round(x) for x in np.linspace(0, L - 1, k).tolist()]
    if any(i < 0 or i >= L for i in kept):
        raise ValueError(f"layer indices must be in 0..{L - 1}, got {kept}")
    if len(set(kept)) != len(kept):
        raise ValueError(f"duplicate layers in {kept}")
    if kept != sorted(kept):
        raise ValueError(f"layers must be increasing (the student keeps teacher order), got {kept}")
    return kept


@dataclass
class StudentInfo:
    """What `build_student` did; saved as student_info.json next to the student."""
    teacher: str
    teacher_layers: int
    student_layers: int
    strategy: str
    kept_layers: list[int]
    teacher_params: int
    student_params: int
    conv_channels: list[int] | None = None   # set when the conv front-end was narrowed (pruned)
    # set when the transformer was narrowed (width_pruning): its width and the teacher's kept
    # residual-stream dimensions (prediction heads of the hidden-state loss start from them)
    hidden_size: int | None = None
    attention_heads: int | None = None
    intermediate_size: int | None = None
    residual_dims: list[int] | None = None
    preset: str | None = None
    squeeze_factor: int = 1                  # > 1: a SEW squeeze student (distillation/squeeze.py)
    extra: dict[str, Any] = field(default_factory=dict)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _teacher_key(student_key: str, kept: list[int]) -> str:
    m = _LAYER_KEY.match(student_key)
    if m is None:
        return student_key
    return f"{m['head']}{kept[int(m['idx'])]}.{m['rest']}"


def copy_weights(model: torch.nn.Module, source_state: dict[str, torch.Tensor],
                 origin_of: Callable[[str], str | None]) -> list[str]:
    """Load into `model` every tensor's origin in `source_state` (same shape, cloned), strictly.
    A tensor whose origin is None keeps its fresh init, and so does `masked_spec_embed` when the
    source lacks it (HF only creates it when the config asks for SpecAugment). Returns the keys
    left fresh; a missing origin or a shape mismatch is an error naming both tensors."""
    state, fresh = {}, []
    for key, tensor in model.state_dict().items():
        origin = origin_of(key)
        if origin is None or (origin not in source_state and key.endswith("masked_spec_embed")):
            state[key] = tensor
            fresh.append(key)
            continue
        if origin not in source_state:
            raise KeyError(f"tensor {key} has no counterpart {origin} in the source model")
        if source_state[origin].shape != tensor.shape:
            raise ValueError(f"shape mismatch {key} {tuple(tensor.shape)} vs {origin} "
                             f"{tuple(source_state[origin].shape)}")
        state[key] = source_state[origin].detach().clone()
    model.load_state_dict(state, strict=True)
    return fresh


def build_student(teacher: Wav2Vec2ForCTC, num_layers: int | None = None, strategy: str = "first",
                  layers: list[int] | None = None, teacher_name: str = "",
                  conv_channels: int | list[int] | None = None,
                  width: TransformerWidth | None = None) -> tuple[Wav2Vec2ForCTC, StudentInfo]:
    """Return (student, info). The teacher is not modified; the student's tensors are copies.
    `conv_channels` (one width, or one per conv layer) narrows the conv front-end to the
    teacher's most important channels (`frontend_pruning.prune_frontend`); `width` narrows the
    transformer (`width_pruning.prune_width`). Both need distilling."""
    check_student_family(teacher.config.model_type)
    L = int(teacher.config.num_hidden_layers)
    kept = select_layers(L, num_layers, strategy, layers)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(kept)
    student = type(teacher)(config)
    teacher_state = teacher.state_dict()
    fresh = copy_weights(student, teacher_state, lambda key: _teacher_key(key, kept))
    student.train(teacher.training)
    if conv_channels is not None:
        from w2v_triton.train.distillation.frontend_pruning import prune_frontend

        student, _ = prune_frontend(student, conv_channels)
    kept_width: dict[str, Any] = {}
    if width is not None:
        from w2v_triton.train.distillation.width_pruning import prune_width

        student, kept_width = prune_width(student, width)
    info = StudentInfo(teacher=teacher_name, teacher_layers=L, student_layers=len(kept),
                       strategy=strategy, kept_layers=kept, teacher_params=count_params(teacher),
                       student_params=count_params(student),
                       conv_channels=list(student.config.conv_dim) if conv_channels is not None else None,
                       extra={"freshly_initialised": fresh} if fresh else {})
    if width is not None:
        info.hidden_size = int(student.config.hidden_size)
        info.attention_heads = int(student.config.num_attention_heads)
        info.intermediate_size = int(student.config.intermediate_size)
        info.residual_dims = list(kept_width["residual_dims"])
    return student, info


# --- loading / saving -----------------------------------------------------------------

def resolve_teacher(name_or_path: str) -> str:
    """A local directory for `name_or_path` (project names: random-base, tiny, reference, hub ids)."""
    from w2v_triton.build.checkpoints import resolve_checkpoint

    return str(resolve_checkpoint(str(name_or_path)))


def load_teacher(name_or_path: str) -> Wav2Vec2ForCTC:
    """Load a Wav2Vec2ForCTC (hub id, local dir or project name) in eval mode, float32."""
    from w2v_triton.build.checkpoints import load_ctc_model

    return cast(Wav2Vec2ForCTC, load_ctc_model(name_or_path))


def copy_processor_files(source: str | Path, out_dir: str | Path) -> list[str]:
    """Copy the teacher's processor files (feature extractor + tokenizer) into out_dir.

    A local directory: its PROCESSOR_FILES are copied byte for byte.
    A hub id: the processor is loaded (from the local HF cache) and saved.
    Returns the file names written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = Path(str(source))
    written = []
    if src.is_dir():
        for f in sorted(src.iterdir()):
            if f.is_file() and f.name in PROCESSOR_FILES:
                shutil.copy2(f, out_dir / f.name)
                written.append(f.name)
        return written
    from transformers import Wav2Vec2Processor
    before = {p.name for p in out_dir.iterdir()}
    Wav2Vec2Processor.from_pretrained(str(source)).save_pretrained(str(out_dir))
    return sorted({p.name for p in out_dir.iterdir()} - before)


def save_student(student: Wav2Vec2ForCTC, info: StudentInfo | None, out_dir: str | Path,
                 processor_source: str | Path | None = None) -> Path:
    """Save the student as an HF dir (+ processor files + student_info.json)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if processor_source is not None:
        copy_processor_files(processor_source, out_dir)
    student.save_pretrained(str(out_dir))
    if info is not None:
        (out_dir / STUDENT_INFO).write_text(json.dumps(asdict(info), indent=2) + "\n")
    return out_dir


def read_student_info(model_dir: str | Path) -> dict[str, Any] | None:
    p = Path(model_dir) / STUDENT_INFO
    return json.loads(p.read_text()) if p.is_file() else None
