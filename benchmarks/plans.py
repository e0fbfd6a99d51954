"""The benchmark matrix as data: `python -m benchmarks.run --plan student` (what `make bench` runs).

Why: the matrix (which students, which ONNX variants, which served configurations) used to be a
shell program in mk/bench.mk rebuilding artifact paths by hand. A plan names what to compare;
`materialize` builds whatever is missing with the library (idempotently: each step reuses what is
up to date) and returns the `--baseline/--onnx/--served` entries and the
sweep settings for benchmarks.run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from w2v_triton.paths import CHECKPOINT_CACHE, REPOS_DIR, onnx_dir_for

VARIANTS = ("int8-pc", "int8-mm")     # served and in-process next to fp32
THROUGHPUT_VARIANT = "int8-mm"        # the fastest variant: the narrow student's only one
NARROW_CONV_CHANNELS = 256            # the student with a pruned (narrower) conv front-end
TRAINED_VARIANTS = ("fp32", "int8-mm")   # what a trained student (BENCH_STUDENTS) is served as
EVAL_FILE = "eval_results.json"          # builders.train_reference --eval-only --model-out DIR
EVAL_SETS = ("test_seen", "test_unseen", "real_speech")
# what each serving profile is measured on: latency its 0.5 s clip (concurrency from the plan's
# seed sweep), throughput everything (10 s clips and real speech up to 16 concurrent requests)
PROFILE_SWEEPS = {"latency": ("seed",), "throughput": ("seed", "real", "clips")}


@dataclass(frozen=True)
class Served:
    """A repository to build (`build_repository`: the variant in the serving profile) and serve."""

    name: str
    model: str                 # a checkpoint name/dir, or the key of a student in the plan
    variant: str = "fp32"
    profile: str = "latency"
    sweeps: tuple[str, ...] = ()   # subset of benchmarks.run --sweeps; () = all of the run's


@dataclass(frozen=True)
class Student:
    key: str
    layers: int = 6
    conv_channels: int | None = None
    path: str = ""             # a trained student's checkpoint dir (served as is, not built)
    variants: tuple[str, ...] = ("fp32", *VARIANTS)


@dataclass(frozen=True)
class HeadlineRow:
    """One student x variant of the report's headline table: its two served repositories."""

    student: str
    variant: str
    latency: str               # Served.name in the latency profile
    throughput: str            # Served.name in the throughput profile
    eval_file: str = ""        # eval_results.json of a trained student; "" = accuracy unknown


@dataclass(frozen=True)
class Plan:
    title: str
    students: tuple[Student, ...] = ()
    baselines: dict[str, str] = field(default_factory=dict)       # name -> checkpoint or student key
    onnx: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (checkpoint/student, variant)
    served: tuple[Served, ...] = ()
    sweeps: dict[str, str] = field(default_factory=dict)          # benchmarks.run options
    headline: tuple[HeadlineRow, ...] = ()
    teacher: str = ""                                             # for the headline's teacher row
    teacher_baseline: str = ""                                    # its in-process PyTorch baseline


def served_in_both_profiles(key: str, variant: str, eval_file: str = "") -> tuple[list[Served], HeadlineRow]:
    """The latency and throughput repositories of one student x variant, and its headline row."""
    names = {profile: f"{key}-{variant}-{profile}" for profile in PROFILE_SWEEPS}
    served = [Served(names[p], key, variant, p, PROFILE_SWEEPS[p]) for p in PROFILE_SWEEPS]
    return served, HeadlineRow(key, variant, names["latency"], names["throughput"], eval_file)


def trained_students(dirs: Sequence[str | Path]) -> list[Student]:
    """Trained (distilled) student checkpoints as plan students, keyed by folder name (with its
    parent's name where two share one); their eval_results.json, if any, gives the accuracy."""
    students: list[Student] = []
    for raw in dirs:
        path = Path(raw).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise ValueError(f"student {raw}: not a checkpoint folder (no config.json)")
        key = path.name
        if any(s.key == key for s in students):
            key = f"{path.parent.name}-{path.name}"
        if any(s.key == key for s in students):
            raise ValueError(f"student {raw}: the name {key!r} is taken by another student folder")
        students.append(Student(key, path=str(path), variants=TRAINED_VARIANTS))
    return students


def conv_width(checkpoint: str) -> int:
    from w2v_triton.build.checkpoints import resolve_checkpoint

    config = json.loads((resolve_checkpoint(checkpoint) / "config.json").read_text())
    return max(config.get("conv_dim") or [0])


def student_plan(teacher: str, trained: Sequence[str | Path] = (), undistilled: bool = True) -> Plan:
    """Teacher vs 6-layer student: PyTorch, ONNX fp32 + variants, every student x variant served in
    both serving profiles (latency, throughput), the student with a narrower conv front-end when the
    teacher's is wider (undistilled: its speed), and any trained students (`trained`: checkpoint
    dirs, accuracy from their eval_results.json). `undistilled=False` leaves out the students built
    from the teacher here (and their in-process rows): only the teacher and `trained`."""
    narrow = f"student6-c{NARROW_CONV_CHANNELS}"
    students = [Student("student6")] if undistilled else []
    if undistilled and conv_width(teacher) > NARROW_CONV_CHANNELS:
        students.append(Student(narrow, conv_channels=NARROW_CONV_CHANNELS, variants=(THROUGHPUT_VARIANT,)))
    students += trained_students(trained)
    if not students:
        raise ValueError("the student plan without undistilled students needs trained student dirs")
    served: list[Served] = []
    headline: list[HeadlineRow] = []
    for student in students:
        eval_file = Path(student.path) / EVAL_FILE if student.path else None
        for variant in student.variants:
            pair, row = served_in_both_profiles(
                student.key, variant, str(eval_file) if eval_file and eval_file.is_file() else "")
            served += pair
            headline.append(row)
    onnx = {"onnx-student6": ("student6", "fp32"), **{f"onnx-student6-{v}": ("student6", v) for v in VARIANTS}}
    onnx = onnx if undistilled else {}
    if any(s.key == narrow for s in students):
        onnx[f"onnx-{narrow}-{THROUGHPUT_VARIANT}"] = (narrow, THROUGHPUT_VARIANT)
    return Plan(
        title=f"bench-student-{Path(teacher).name}" + ("-distilled" if trained else ""),
        students=tuple(students),
        baselines={"pytorch-teacher": teacher, **({"pytorch-student6": "student6"} if undistilled else {})},
        onnx=onnx, served=tuple(served), headline=tuple(headline), teacher=teacher,
        teacher_baseline="pytorch-teacher",
        sweeps={"real_concurrency": "1:16:5", "clips_concurrency": "1:4:3", "seed_concurrency": "1:4:3",
                "request_count": "12"})


def teacher_plan(teacher: str) -> Plan:
    """The served teacher ensemble vs the same checkpoint in PyTorch and ONNX in-process."""
    return Plan(
        title=f"bench-teacher-{teacher}",
        baselines={f"pytorch-{teacher}": teacher},
        onnx={f"onnx-{teacher}": (teacher, "fp32")},
        served=(Served(f"served-{teacher}", teacher),),
        sweeps={"real_concurrency": "1:2", "clips_concurrency": "1:1", "request_count": "8"})


PLANS = {"student": student_plan, "teacher": teacher_plan}


def read_accuracy(eval_file: str | Path) -> dict[str, dict[str, float]]:
    """{set: {"wer", "cer", "n"}} of an eval_results.json (the sets it has of EVAL_SETS)."""
    try:
        data = json.loads(Path(eval_file).read_text())
        return {name: {k: float(data[name][k]) for k in ("wer", "cer", "n") if k in data[name]}
                for name in EVAL_SETS if name in data}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{eval_file}: not a readable eval_results.json ({exc})") from None


def headline_info(plan: Plan) -> dict[str, Any]:
    """What the report's headline table needs: per student x variant its two served names and
    accuracy (None = unknown), and the teacher's baseline and accuracy."""
    from w2v_triton.build.checkpoints import resolve_checkpoint

    teacher_eval = resolve_checkpoint(plan.teacher) / EVAL_FILE if plan.teacher else None
    return {"teacher": {"name": plan.teacher, "baseline": plan.teacher_baseline,
                        "accuracy": read_accuracy(teacher_eval) if teacher_eval and teacher_eval.is_file() else None},
            "rows": [{"student": r.student, "variant": r.variant, "latency": r.latency,
                      "throughput": r.throughput, "eval_file": r.eval_file,
                      "accuracy": read_accuracy(r.eval_file) if r.eval_file else None} for r in plan.headline]}


def materialize(plan: Plan, teacher: str) -> dict[str, dict[str, str]]:
    """Build what the plan needs; return {"baseline"|"onnx"|"served": {name: path},
    "served_sweeps": {name: "seed,clips"}} (the served entries that run a subset of the sweeps)."""
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.checkpoints import resolve_checkpoint
    from w2v_triton.build.repository import RepositoryOptions
    from w2v_triton.train.distillation.student import build_student, load_teacher, save_student
    from w2v_triton.build.onnx_export import build_onnx
    from w2v_triton.build.variants import build_variant

    teacher_dir = resolve_checkpoint(teacher)
    dirs: dict[str, Path] = {}
    for student in plan.students:
        if student.path:
            dirs[student.key] = Path(student.path)
            continue
        out = CHECKPOINT_CACHE / f"{teacher_dir.name}-{student.key}"
        if not (out / "config.json").is_file():
            model, info = build_student(load_teacher(str(teacher_dir)), num_layers=student.layers,
                                        strategy="first", teacher_name=teacher, conv_channels=student.conv_channels)
            save_student(model, info, out, processor_source=teacher_dir)
        dirs[student.key] = out

    def checkpoint(name: str) -> Path:
        return dirs[name] if name in dirs else resolve_checkpoint(name)

    entries: dict[str, dict[str, str]] = {"baseline": {}, "onnx": {}, "served": {}, "served_sweeps": {}}
    for name, model in plan.baselines.items():
        entries["baseline"][name] = str(checkpoint(model))
    for name, (model, variant) in plan.onnx.items():
        fp32, _ = build_onnx(checkpoint(model), onnx_dir_for(checkpoint(model)))
        entries["onnx"][name] = str(fp32 if variant == "fp32" else
                                    build_variant(fp32, variant, checkpoint=checkpoint(model)))
    for served in plan.served:
        repo = REPOS_DIR / f"{plan.title}-{served.name}"
        build_repository(BuildRequest(model=str(checkpoint(served.model)), output=repo, variant=served.variant,
                                      options=RepositoryOptions.for_profile(served.profile)))
        entries["served"][served.name] = str(repo)
        if served.sweeps:
            entries["served_sweeps"][served.name] = ",".join(served.sweeps)
    return entries
