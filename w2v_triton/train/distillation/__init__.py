"""Knowledge distillation: 12-layer wav2vec2 CTC teacher -> shallower student.

- `student`  builds a student from a teacher by keeping a subset of its transformer layers.
- `frontend_pruning`, `width_pruning`  narrower conv front-end / transformer (structured pruning).
- `presets`  named student shapes (`--preset`), widths as fractions of the teacher's.
- `losses`   KD losses: vocabulary-axis KL with temperature, CTC, hidden-state (DistilHuBERT).
- `trainer`  the distillation task that plugs into `w2v_triton.train`'s trainer.
"""
