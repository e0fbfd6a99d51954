"""Named student shapes (`make student PRESET=narrow`, `builders/{student,distill}.py --preset`).

A `StudentShape` says how a student differs from its teacher: which layers it keeps, how wide
its conv front-end and its transformer are. Widths are FRACTIONS of the teacher's, so a preset
means the same on the reference model (hidden 256) and on base (hidden 768); `resolve` turns a
shape into the concrete numbers for one teacher. Explicit command-line flags override a
preset's fields (`StudentShape.replace`); the defaults are defined here, once.

`squeeze` > 1 makes the student a SEW squeeze model (`distillation/squeeze.py`): layers, front-end
and width are cut first as for any student, then the result becomes a `SEWForCTC` whose
transformer sees 1/squeeze of the frames.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from w2v_triton.train.distillation.student import STRATEGIES, parse_conv_channels, parse_layers, select_layers
from w2v_triton.train.distillation.width_pruning import TransformerWidth, width_for


@dataclass(frozen=True)
class StudentShape:
    """How a student is cut from its teacher. Absolute sizes (conv_channels, hidden_size,
    attention_heads, intermediate_size) win over the fractions; None = as the teacher."""
    num_layers: int | None = 6
    strategy: str = "first"
    layers: tuple[int, ...] | None = None          # explicit 0-based teacher layers
    conv_fraction: float | None = None             # conv front-end width, fraction of the teacher's
    conv_channels: tuple[int, ...] | None = None   # ... or absolute: one width, or one per conv layer
    width: float = 1.0                             # transformer hidden size, fraction of the teacher's
    ffn_width: float | None = None                 # FFN width fraction (None: same as `width`)
    hidden_size: int | None = None                 # absolute transformer width (overrides `width`)
    attention_heads: int | None = None             # default: hidden_size / the teacher's head size
    intermediate_size: int | None = None           # absolute FFN width (overrides `ffn_width`)
    squeeze: int = 1                               # frame-rate squeeze factor (squeeze.py; 1 = none)
    description: str = ""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown layer strategy {self.strategy!r}; choose one of {STRATEGIES}")
        for name in ("conv_fraction", "ffn_width"):
            v = getattr(self, name)
            if v is not None and not 0 < v <= 1:
                raise ValueError(f"{name} must be in (0, 1] (a fraction of the teacher's width), got {v}")
        if not 0 < self.width <= 1:
            raise ValueError(f"width must be in (0, 1] (a fraction of the teacher's width), got {self.width}")
        if int(self.squeeze) < 1:
            raise ValueError(f"squeeze must be >= 1, got {self.squeeze}")

    def replace(self, **overrides: Any) -> StudentShape:
        """A copy with the non-None `overrides` applied (explicit flags over a preset). Setting
        absolute conv_channels clears conv_fraction, explicit layers set strategy 'explicit',
        and so on, so an override always means what it says."""
        kw = {k: v for k, v in overrides.items() if v is not None}
        if "conv_channels" in kw:
            kw["conv_channels"] = tuple(kw["conv_channels"]) if isinstance(kw["conv_channels"], (list, tuple)) \
                else (int(kw["conv_channels"]),)
            kw.setdefault("conv_fraction", None)
        if "layers" in kw:
            kw["layers"] = tuple(int(i) for i in kw["layers"])
            kw["strategy"] = "explicit"
            kw.setdefault("num_layers", None)
        elif kw.get("strategy", self.strategy) != "explicit":
            kw.setdefault("layers", None)
        return dataclasses.replace(self, **kw)

    @property
    def narrows_frontend(self) -> bool:
        return self.conv_fraction is not None or self.conv_channels is not None

    @property
    def narrows_transformer(self) -> bool:
        return (self.width < 1 or (self.ffn_width or 1) < 1 or self.hidden_size is not None
                or self.attention_heads is not None or self.intermediate_size is not None)


@dataclass(frozen=True)
class ResolvedShape:
    """A shape's concrete numbers for one teacher (what `build_student` takes)."""
    kept_layers: list[int]
    strategy: str
    conv_channels: list[int] | None     # None: the teacher's front-end, copied
    width: TransformerWidth | None      # None: the teacher's width, copied
    squeeze: int = 1


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def resolve(shape: StudentShape, config: Any) -> ResolvedShape:
    """Concrete layers and widths of `shape` for a teacher with `config` (ValueError if impossible).
    Fractions round to whole heads (hidden) and to multiples of 8 (conv channels, FFN)."""
    L = int(config.num_hidden_layers)
    kept = select_layers(L, shape.num_layers, shape.strategy, list(shape.layers) if shape.layers else None)
    conv: list[int] | None = None
    teacher_conv = [int(c) for c in config.conv_dim]
    if shape.conv_channels is not None:
        conv = list(shape.conv_channels) * len(teacher_conv) if len(shape.conv_channels) == 1 \
            else list(shape.conv_channels)
    elif shape.conv_fraction is not None and shape.conv_fraction < 1:
        conv = [min(c, _round_to(c * shape.conv_fraction, 8)) for c in teacher_conv]
    width: TransformerWidth | None = None
    if shape.narrows_transformer:
        H, heads = int(config.hidden_size), int(config.num_attention_heads)
        hidden = shape.hidden_size
        if hidden is None:
            if shape.attention_heads is not None:
                hidden = shape.attention_heads * (H // heads)
            else:
                hidden = max(1, round(heads * shape.width)) * (H // heads)
        ffn = shape.intermediate_size
        if ffn is None:
            frac = shape.ffn_width if shape.ffn_width is not None else hidden / H
            ffn = min(int(config.intermediate_size), _round_to(int(config.intermediate_size) * frac, 8))
        width = width_for(config, hidden, shape.attention_heads, ffn)
        if (width.hidden_size, width.num_attention_heads, width.intermediate_size) == \
                (H, heads, int(config.intermediate_size)):
            width = None
    return ResolvedShape(kept, shape.strategy, conv, width, int(shape.squeeze))


_LAYERS6 = StudentShape(num_layers=6, strategy="even", description="6 evenly spaced layers, everything else copied")
_LAYERS6_PRUNE = dataclasses.replace(_LAYERS6, conv_fraction=0.5,
                                     description="layers6 + conv front-end pruned to half its channels")
PRESETS: dict[str, StudentShape] = {
    "layers6": _LAYERS6,
    "layers6-prune": _LAYERS6_PRUNE,
    "narrow75": dataclasses.replace(_LAYERS6_PRUNE, width=0.75,
                                    description="layers6-prune + transformer 3/4 wide (hidden, heads, FFN)"),
    "narrow": dataclasses.replace(_LAYERS6_PRUNE, width=0.5,
                                  description="layers6-prune + transformer 1/2 wide (hidden, heads, FFN)"),
    "squeeze": dataclasses.replace(_LAYERS6_PRUNE, squeeze=2,
                                   description="layers6-prune + SEW squeeze 2 (the transformer sees half the frames)"),
}


def get_preset(name: str) -> StudentShape:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown student preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def shape_dict(shape: StudentShape) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(shape).items()}


# --- distillation defaults a preset implies -------------------------------------------------------

PRESET_HIDDEN_WEIGHT = 1.0   # recipe (b) of docs/distillation.md: KL + CTC + hidden-state loss


def encoder_input_pair(shape: StudentShape) -> bool:
    """Pair the student's encoder input with the teacher's (hidden_states 0 -> 0) when the
    front-end or the width changed: it trains the new front-end / projection directly."""
    return shape.narrows_frontend or shape.narrows_transformer


def build_shaped_student(teacher: Any, shape: StudentShape, teacher_name: str = "",
                         preset: str | None = None) -> tuple[Any, Any]:
    """(student, StudentInfo) for `shape` cut from `teacher` (layers, then front-end, then width,
    then, when shape.squeeze > 1, the SEW squeeze: a `SEWForCTC`)."""
    from w2v_triton.train.distillation.student import build_student, check_student_family

    check_student_family(teacher.config.model_type)
    r = resolve(shape, teacher.config)
    student: Any
    if r.squeeze > 1:
        from w2v_triton.train.distillation.squeeze import build_squeeze_student

        student, info = build_squeeze_student(teacher, None, "explicit", r.kept_layers, teacher_name,
                                              squeeze_factor=r.squeeze, conv_channels=r.conv_channels,
                                              width=r.width)
    else:
        student, info = build_student(teacher, None, "explicit", r.kept_layers, teacher_name=teacher_name,
                                      conv_channels=r.conv_channels, width=r.width)
    info.strategy = r.strategy
    info.preset = preset
    info.extra = dict(info.extra, shape=shape_dict(shape))
    return student, info


# --- command-line flags (builders/student.py, builders/distill.py) ---------------------------------

def add_shape_arguments(ap: Any, default_note: str) -> None:
    """The student-shape flags shared by builders/student.py and builders/distill.py, on an
    argparse parser or argument group (all default to None: a preset's value, else the
    StudentShape default, applies)."""
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="named student shape (explicit flags below override its fields)")
    ap.add_argument("--num-layers", type=int, default=None, help=f"student transformer layers{default_note}")
    ap.add_argument("--strategy", choices=STRATEGIES, default=None,
                    help="first | last | even | explicit (default: explicit if --layers, else the preset's, else first)")
    ap.add_argument("--layers", default=None, help="explicit 0-based teacher layers, e.g. 0,2,4,7,9,11")
    ap.add_argument("--conv-channels", default=None,
                    help="narrow the conv front-end to this many channels (or one width per conv layer, "
                         "comma-separated), keeping the teacher's most important ones; distil afterwards")
    ap.add_argument("--hidden-size", type=int, default=None,
                    help="narrow the transformer to this width (a multiple of the teacher's head size)")
    ap.add_argument("--attention-heads", type=int, default=None,
                    help="attention heads kept (default: hidden size / the teacher's head size)")
    ap.add_argument("--intermediate-size", type=int, default=None,
                    help="FFN width (default: the teacher's, scaled like the hidden size)")
    ap.add_argument("--squeeze-factor", type=int, default=None,
                    help="> 1: a SEW squeeze student (SEWForCTC) whose transformer sees 1/N of the frames; when "
                         "distilling, hidden-state targets are the teacher's states averaged over N frames "
                         "(1: none, overriding a preset's); distil afterwards (docs/distillation.md, Squeeze)")


def shape_from_args(args: argparse.Namespace) -> StudentShape:
    """The StudentShape the flags ask for: the preset (or the defaults) with explicit flags applied
    (ValueError for a bad value)."""
    if args.squeeze_factor is not None and args.squeeze_factor < 1:
        raise ValueError(f"--squeeze-factor must be >= 1, got {args.squeeze_factor}")
    shape = get_preset(args.preset) if args.preset else StudentShape()
    conv = parse_conv_channels(args.conv_channels)
    return shape.replace(num_layers=args.num_layers, strategy=args.strategy, layers=parse_layers(args.layers),
                         conv_channels=conv, hidden_size=args.hidden_size,
                         attention_heads=args.attention_heads, intermediate_size=args.intermediate_size,
                         squeeze=args.squeeze_factor)
