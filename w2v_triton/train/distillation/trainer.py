"""Distillation training: teacher (frozen, eval) -> student, on JSONL manifests.

Built on `w2v_triton.train`: ManifestDataset + BucketBatchSampler + collate for the data,
`Trainer` for the loop (AdamW, schedule, clipping, accumulation, DDP under torchrun with gloo
on CPU, checkpoints with exact resume, JSONL log). This module only adds:

- unlabelled manifests (rows without "text"): KD-only rows, flagged `labelled=False` so the
  CTC term skips them (mixed batches work);
- the student (built from the teacher's layers, or loaded from `student_init`);
- `DistillTask.compute_loss` (teacher forward under no_grad + `DistillModel` forward);
- dev evaluation: WER vs labels (student and teacher), WER of the student vs the teacher's
  own greedy transcripts, dev KL;
- export of the student as an HF dir with the teacher's processor files.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader
from transformers import Wav2Vec2ForCTC

from w2v_triton.build.checkpoints import load_ctc_model
from w2v_triton.build.manifest import read_rows as read_manifest
from w2v_triton.train.data import BucketBatchSampler, ManifestDataset, collate
from w2v_triton.train.distillation.losses import DistillLossConfig
from w2v_triton.train.distillation.presets import StudentShape, build_shaped_student
from w2v_triton.train.distillation.student import (
    StudentInfo,
    check_student_family,
    copy_processor_files,
    count_params,
    load_teacher,
    read_student_info,
    resolve_teacher,
    save_student,
)
from w2v_triton.train.distillation.task import DistillModel, DistillTask, evaluate, id_to_token_of, make_distill_model
from w2v_triton.train.distillation.teacher_cache import TeacherCache, weights_fingerprint
from w2v_triton.train.trainer import TrainConfig, Trainer, read_log

RESULTS_FILE = "distill_results.json"


@dataclass
class DistillConfig:
    teacher: str
    train: str
    out: str                              # the student HF dir written at the end
    dev: str | None = None
    work_dir: str | None = None           # trainer state (checkpoints, log); default <out>.train
    num_layers: int | None = StudentShape.num_layers     # defaults: presets.StudentShape's
    strategy: str = StudentShape.strategy
    layers: list[int] | None = None
    conv_channels: int | list[int] | None = None   # narrow (prune) the student's conv front-end
    squeeze_factor: int = 1               # > 1: a SEW squeeze student (distillation/squeeze.py)
    # a whole student shape (layers, front-end, width, squeeze): replaces the five fields above
    # when set (builders/distill.py always sets it); a squeeze_factor != 1 still overrides its squeeze
    shape: StudentShape | None = None
    preset: str | None = None             # the preset `shape` came from (recorded only)
    student_init: str | None = None       # start from an existing student dir instead
    spec_augment: bool = True             # SpecAugment on the student (teacher: never, eval mode)
    # > 0: training audio re-augmented on the fly (train/augment.py); teacher and student hear the same
    augment_strength: float = 0.0
    teacher_cache: str | None = None      # dir of the teacher's targets per utterance (teacher_cache.py)
    limit_train: int | None = None
    limit_dev: int | None = None
    max_duration: float | None = None
    threads: int | None = None
    eval_at_start: bool = True            # dev metrics of the un-distilled student (step 0)
    loss: DistillLossConfig = field(default_factory=DistillLossConfig)


# --- data -------------------------------------------------------------------------------------

class KDManifestDataset(ManifestDataset):
    """ManifestDataset that also accepts rows without a transcript (KD-only, labelled=False)."""

    def __init__(self, rows: list[dict[str, Any]], vocab: dict[str, int], do_normalize: bool = True,
                 augment_strength: float = 0.0) -> None:
        rows = [dict(r) for r in rows]
        self.labelled_flags = []
        for r in rows:
            has = r.get("text") is not None
            self.labelled_flags.append(has)
            if not has:
                r["text"] = ""
        super().__init__(rows, vocab, do_normalize=do_normalize, augment_strength=augment_strength)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        item["labelled"] = self.labelled_flags[i]
        item["audio"] = self.rows[i].get("audio")
        return item


def kd_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch = collate(items)
    batch["labelled"] = torch.tensor([bool(it.get("labelled", True)) for it in items])
    batch["audio"] = [it.get("audio") for it in items]   # names the rows in a teacher cache
    return batch


def load_dataset(manifest: str, vocab: dict[str, Any], do_normalize: bool, limit: int | None = None,
                 max_duration: float | None = None, augment_strength: float = 0.0) -> KDManifestDataset:
    rows = read_manifest(manifest, max_duration=max_duration, limit=limit)
    if not rows:
        raise ValueError(f"{manifest}: no utterances (after max_duration={max_duration})")
    return KDManifestDataset(rows, vocab, do_normalize=do_normalize, augment_strength=augment_strength)


def dev_batches(dataset: Any, max_batch_seconds: float) -> DataLoader[Any]:
    sampler = BucketBatchSampler(dataset.durations, max_batch_seconds, shuffle=False)
    # own generator: evaluating must not draw from the global torch RNG (training randomness)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=kd_collate,
                      generator=torch.Generator().manual_seed(0))


# --- model --------------------------------------------------------------------------------------

def prepare_student(teacher: Wav2Vec2ForCTC, cfg: DistillConfig, teacher_name: str
                    ) -> tuple[Wav2Vec2ForCTC, StudentInfo | dict[str, Any]]:
    check_student_family(teacher.config.model_type)
    if cfg.squeeze_factor < 1:
        raise ValueError(f"squeeze_factor must be >= 1, got {cfg.squeeze_factor}")
    info: StudentInfo | dict[str, Any]
    if cfg.student_init:
        student = cast(Wav2Vec2ForCTC, load_ctc_model(cfg.student_init))   # eager attention, float32
        info = read_student_info(cfg.student_init) or {}
        if student.config.vocab_size != teacher.config.vocab_size:
            raise ValueError("student and teacher vocabularies differ")
    else:
        shape = cfg.shape if cfg.shape is not None else StudentShape().replace(
            num_layers=cfg.num_layers, strategy=cfg.strategy, layers=cfg.layers, conv_channels=cfg.conv_channels)
        if cfg.squeeze_factor != 1:
            shape = shape.replace(squeeze=cfg.squeeze_factor)
        # squeeze > 1: a SEWForCTC, with the same CTC interface (forward, lengths, config)
        student, info = build_shaped_student(teacher, shape, teacher_name, cfg.preset)
    # Distillation-time settings: no LayerDrop (DDP needs every layer every step), SpecAugment
    # on the student only if asked.
    student.config.layerdrop = 0.0
    if not cfg.spec_augment:
        student.config.apply_spec_augment = False
        student.config.mask_time_prob = 0.0
        student.config.mask_feature_prob = 0.0
    return student, info


def freeze_unreached(model: DistillModel) -> list[str]:
    """requires_grad=False for student tensors no loss term reaches (DDP with
    find_unused_parameters=False needs every trainable tensor used every step, and AdamW's
    weight decay would otherwise shrink them for nothing). Returns their names."""
    cfg = model.loss.cfg
    student = model.student
    c = student.config
    frozen = []
    uses_logits = cfg.kl_weight > 0 or cfg.ctc_weight > 0
    spec = c.apply_spec_augment and (c.mask_time_prob > 0 or c.mask_feature_prob > 0)
    top = c.num_hidden_layers if uses_logits else max((s for s, _ in model.loss.layer_map), default=0)
    for name, p in student.named_parameters():
        reached = True
        if (name.startswith("lm_head.") or ".encoder.upsample." in name) and not uses_logits:
            reached = False
        if name == f"{student.base_model_prefix}.masked_spec_embed" and not spec:
            reached = False
        if ".encoder.layers." in name and int(name.split(".encoder.layers.")[1].split(".")[0]) >= top:
            reached = False
        if (name.startswith(f"{student.base_model_prefix}.encoder.layer_norm.") and getattr(c, "do_stable_layer_norm", False)
                and top < c.num_hidden_layers):
            reached = False  # stable-LN: the final norm only follows the last layer
        if not reached:
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


# --- run ------------------------------------------------------------------------------------------

def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def logged_dev_start(log_path: Path) -> dict[str, Any]:
    """The un-distilled student's dev metrics from an earlier run's log (a resumed run keeps them
    in its results instead of losing them); {} when that run did not measure them."""
    if not log_path.is_file():
        return {}
    rows = [r for r in read_log(log_path) if r.get("event") == "eval_at_start"]
    return {k[len("dev_"):]: v for k, v in rows[-1].items() if k.startswith("dev_")} if rows else {}


@dataclass
class DistillSetup:
    """Everything a distillation run trains with, built once from a DistillConfig."""
    teacher_dir: str
    teacher: Wav2Vec2ForCTC
    info: StudentInfo | dict[str, Any]
    model: DistillModel
    task: DistillTask
    vocab: dict[str, int]
    do_normalize: bool
    frozen: list[str]
    train_ds: KDManifestDataset

    @property
    def kept_layers(self) -> list[int] | None:
        return self.info.kept_layers if isinstance(self.info, StudentInfo) else self.info.get("kept_layers")


def setup_distillation(cfg: DistillConfig) -> DistillSetup:
    """Teacher, student (+ loss heads), task (with its teacher cache) and training set of `cfg`."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    teacher_dir = resolve_teacher(cfg.teacher)
    teacher = load_teacher(teacher_dir)
    teacher.float()  # type: ignore[no-untyped-call]  # fp32 master weights (bf16 only via --bf16 autocast)
    vocab = {t: i for i, t in id_to_token_of(teacher_dir, int(teacher.config.vocab_size or 0)).items()}
    from w2v_triton.build.checkpoints import read_checkpoint_info
    do_normalize = read_checkpoint_info(Path(teacher_dir)).do_normalize

    student, info = prepare_student(teacher, cfg, str(cfg.teacher))
    student.float()  # type: ignore[no-untyped-call]  # transformers leaves float() unannotated
    kept = info.kept_layers if isinstance(info, StudentInfo) else info.get("kept_layers")
    dims = info.residual_dims if isinstance(info, StudentInfo) else info.get("residual_dims")
    model = make_distill_model(student, teacher, cfg.loss, kept, dims)
    frozen = freeze_unreached(model)
    cache = None
    if cfg.teacher_cache:
        if cfg.augment_strength > 0:
            raise ValueError("a teacher cache and on-the-fly augmentation exclude each other: augmented audio "
                             "differs at every read, so the stored teacher outputs would be wrong targets")
        cache = TeacherCache(cfg.teacher_cache, weights_fingerprint(teacher),
                             [t for _, t in model.loss.layer_map] if cfg.loss.needs_hidden else [], do_normalize)
    train_ds = load_dataset(cfg.train, vocab, do_normalize, cfg.limit_train, cfg.max_duration,
                            cfg.augment_strength)
    return DistillSetup(teacher_dir, teacher, info, model, DistillTask(teacher, cfg.loss, cache), vocab,
                        do_normalize, frozen, train_ds)


def device_description(device: torch.device, world: int) -> str:
    """What trained the run, for its results: e.g. "1 CPU thread x 1 process(es), cpu-2core-amd-epyc"."""
    from w2v_triton.eval.machine import machine_name

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} x {world}"
    return f"{torch.get_num_threads()} CPU thread(s) x {world} process(es), {machine_name()}"


def run_distillation(cfg: DistillConfig, train_cfg: TrainConfig, resume: bool | str | None = None,
                     max_steps: int | None = None) -> dict[str, Any]:
    """Train and export. Returns {"last": last train log row, "dev": dev metrics, "out": dir}."""
    st = setup_distillation(cfg)
    teacher_dir, teacher, info, model, task = st.teacher_dir, st.teacher, st.info, st.model, st.task
    vocab, train_ds, kept = st.vocab, st.train_ds, st.kept_layers
    dev_ds = load_dataset(cfg.dev, vocab, st.do_normalize, cfg.limit_dev, cfg.max_duration) if cfg.dev else None
    id_to_token = {i: t for t, i in vocab.items()}

    def eval_fn(m: torch.nn.Module) -> dict[str, Any]:
        if dev_ds is None:
            return {}
        res = evaluate(cast(Wav2Vec2ForCTC, m.student), task.teacher, dev_batches(dev_ds, train_cfg.eval_max_batch_seconds),
                       id_to_token, cfg.loss.temperature)
        res["wer"], res["cer"] = res["wer_student_vs_labels"], res["cer_student_vs_labels"]
        return res

    train_cfg.out_dir = cfg.work_dir or f"{cfg.out}.train"
    train_cfg.extra = dict(train_cfg.extra, distill={
        "teacher": str(cfg.teacher), "loss": asdict(cfg.loss), "kept_layers": kept, "preset": cfg.preset,
        "layer_map": [list(p) for p in model.loss.layer_map],
        "frozen": st.frozen, "student_params": count_params(model.student), "teacher_params": count_params(teacher),
        "train": cfg.train, "dev": cfg.dev, "train_utterances": len(train_ds),
        "augment_strength": cfg.augment_strength, "spec_augment": cfg.spec_augment,
        "teacher_cache": cfg.teacher_cache})
    trainer = Trainer(model, train_ds, train_cfg, dev_dataset=dev_ds, vocab=vocab,
                      compute_loss=task.compute_loss, collate_fn=kd_collate,
                      eval_fn=eval_fn if dev_ds is not None else None)
    if resume is True and trainer.latest_checkpoint() is None:
        resume = None   # --resume on a fresh work dir: a fresh run (start metrics and all)
    dev_start = logged_dev_start(Path(train_cfg.out_dir) / "train_log.jsonl") if resume else {}
    if dev_ds is not None and cfg.eval_at_start and not resume and trainer.step == 0:
        dev_start = eval_fn(trainer.model)
        trainer.log({"step": 0, "event": "eval_at_start", **{f"dev_{k}": v for k, v in dev_start.items()}})
    last = trainer.train(resume=resume, max_steps=max_steps)
    dev = eval_fn(trainer.model) if dev_ds is not None and trainer.is_main else {}
    if trainer.is_main:
        out = Path(cfg.out)
        student_info = info if isinstance(info, StudentInfo) else None
        trained = cast(Wav2Vec2ForCTC, trainer.model.student)
        save_student(trained, student_info, out, processor_source=teacher_dir)
        if student_info is None and cfg.student_init:
            copy_processor_files(teacher_dir, out)
        results = {"step": trainer.step, "train_time_s": round(trainer.train_time, 1),
                   "last": last, "dev_start": dev_start, "dev": dev, "loss": asdict(cfg.loss), "kept_layers": kept,
                   "preset": cfg.preset, "layer_map": [list(p) for p in model.loss.layer_map],
                   "student_params": count_params(cast(torch.nn.Module, trainer.model.student)),
                   "teacher_params": count_params(teacher), "teacher": str(cfg.teacher),
                   "world_size": trainer.world, "device": device_description(trainer.device, trainer.world)}
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
        trainer.log({"event": "exported", "out": str(out), "dev": dev})
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return {"last": last, "dev_start": dev_start, "dev": dev, "out": cfg.out, "trainer": trainer}
