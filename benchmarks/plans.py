"""The benchmark matrix as data: `python -m benchmarks.run --plan student` (what `make bench` runs).

Why: the matrix (which students, which ONNX variants, which served configurations) used to be a
shell program in mk/bench.mk rebuilding artifact paths by hand. A plan names what to compare;
`materialize` builds whatever is missing with the library and the builders (idempotently: each
builder reuses what is up to date) and returns the `--baseline/--onnx/--served` entries and the
sweep settings for benchmarks.run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from w2v_triton.paths import CHECKPOINT_CACHE, REPOS_DIR, onnx_dir_for

VARIANTS = ("int8-pc", "int8-mm")     # served and in-process next to fp32
THROUGHPUT_VARIANT = "int8-mm"        # also served tuned for throughput: one 1-thread instance per core
NARROW_CONV_CHANNELS = 256            # the student with a pruned (narrower) conv front-end


@dataclass(frozen=True)
class Served:
    """A repository to build (`builders.repository` arguments) and serve."""

    name: str
    model: str                 # a checkpoint name/dir, or the key of a student in the plan
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Student:
    key: str
    layers: int = 6
    conv_channels: int | None = None


@dataclass(frozen=True)
class Plan:
    title: str
    students: tuple[Student, ...] = ()
    baselines: dict[str, str] = field(default_factory=dict)       # name -> checkpoint or student key
    onnx: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (checkpoint/student, variant)
    served: tuple[Served, ...] = ()
    sweeps: dict[str, str] = field(default_factory=dict)          # benchmarks.run options


def throughput_flags(variant: str) -> tuple[str, ...]:
    return ("--variant", variant, "--acoustic-instances", str(os.cpu_count() or 1), "--intra-op-threads", "1")


def student_plan(teacher: str) -> Plan:
    """Teacher vs 6-layer student: PyTorch, ONNX fp32 + variants, served (latency and throughput
    configurations), and the student with a narrower conv front-end (undistilled: its speed)."""
    narrow = f"student6-c{NARROW_CONV_CHANNELS}"
    return Plan(
        title=f"bench-student-{teacher}",
        students=(Student("student6"), Student(narrow, conv_channels=NARROW_CONV_CHANNELS)),
        baselines={"pytorch-teacher": teacher, "pytorch-student6": "student6"},
        onnx={"onnx-student6": ("student6", "fp32"),
              **{f"onnx-student6-{v}": ("student6", v) for v in VARIANTS},
              f"onnx-{narrow}-{THROUGHPUT_VARIANT}": (narrow, THROUGHPUT_VARIANT)},
        served=(Served("student6", "student6"),
                *(Served(f"student6-{v}", "student6", ("--variant", v)) for v in VARIANTS),
                Served(f"student6-{THROUGHPUT_VARIANT}-throughput", "student6", throughput_flags(THROUGHPUT_VARIANT)),
                Served(f"{narrow}-{THROUGHPUT_VARIANT}", narrow, ("--variant", THROUGHPUT_VARIANT)),
                Served(f"{narrow}-{THROUGHPUT_VARIANT}-throughput", narrow, throughput_flags(THROUGHPUT_VARIANT))),
        sweeps={"real_concurrency": "1:16:5", "clips_concurrency": "1:4:3", "request_count": "12"})


def teacher_plan(teacher: str) -> Plan:
    """The served teacher ensemble vs the same checkpoint in PyTorch and ONNX in-process."""
    return Plan(
        title=f"bench-teacher-{teacher}",
        baselines={f"pytorch-{teacher}": teacher},
        onnx={f"onnx-{teacher}": (teacher, "fp32")},
        served=(Served(f"served-{teacher}", teacher),),
        sweeps={"real_concurrency": "1:2", "clips_concurrency": "1:1", "request_count": "8"})


PLANS = {"student": student_plan, "teacher": teacher_plan}


def materialize(plan: Plan, teacher: str) -> dict[str, dict[str, str]]:
    """Build what the plan needs; return {"baseline"|"onnx"|"served": {name: path}}."""
    from builders.repository import main as build_repository
    from w2v_triton.checkpoints import resolve_checkpoint
    from w2v_triton.distillation.student import build_student, load_teacher, save_student
    from w2v_triton.onnx_export import build_onnx
    from w2v_triton.variants import build_variant

    teacher_dir = resolve_checkpoint(teacher)
    dirs: dict[str, Path] = {}
    for student in plan.students:
        out = CHECKPOINT_CACHE / f"{teacher_dir.name}-{student.key}"
        if not (out / "config.json").is_file():
            model, info = build_student(load_teacher(str(teacher_dir)), num_layers=student.layers,
                                        strategy="first", teacher_name=teacher, conv_channels=student.conv_channels)
            save_student(model, info, out, processor_source=teacher_dir)
        dirs[student.key] = out

    def checkpoint(name: str) -> Path:
        return dirs[name] if name in dirs else resolve_checkpoint(name)

    entries: dict[str, dict[str, str]] = {"baseline": {}, "onnx": {}, "served": {}}
    for name, model in plan.baselines.items():
        entries["baseline"][name] = str(checkpoint(model))
    for name, (model, variant) in plan.onnx.items():
        fp32, _ = build_onnx(checkpoint(model), onnx_dir_for(checkpoint(model)))
        entries["onnx"][name] = str(fp32 if variant == "fp32" else
                                    build_variant(fp32, variant, checkpoint=checkpoint(model)))
    for served in plan.served:
        repo = REPOS_DIR / f"{plan.title}-{served.name}"
        if build_repository(["--model", str(checkpoint(served.model)), "--output", str(repo), *served.flags]) != 0:
            raise RuntimeError(f"cannot build {repo} for the plan {plan.title}")
        entries["served"][served.name] = str(repo)
    return entries
