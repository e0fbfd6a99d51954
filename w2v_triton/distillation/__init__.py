"""Knowledge distillation: 12-layer wav2vec2 CTC teacher -> shallower student.

- `student`  builds a student from a teacher by keeping a subset of its transformer layers.
- `losses`   KD losses: vocabulary-axis KL with temperature, CTC, hidden-state (DistilHuBERT).
- `trainer`  the distillation task that plugs into `w2v_triton.training`'s trainer.
"""
