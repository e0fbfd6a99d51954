"""The teacher's outputs per training utterance on disk, so that later epochs skip its forward pass.

The teacher is frozen, in eval mode, and hears the stored audio: its logits and the hidden states
the loss pairs read are the same every epoch, and its forward pass is ~40 % of a distillation step
of the squeeze student on this CPU (docs/distillation.md, "Long runs"). The first epoch computes
them (a miss) and writes them; later epochs read them (a hit). Targets are rounded to float16 on
both paths, so a step gives the same loss whether its rows were hits or misses, and a killed and
resumed run matches one that was not.

Valid only while the teacher hears exactly the stored audio: on-the-fly augmentation changes every
read, so `run_distillation` refuses the two together. A cache belongs to one teacher (a hash of its
weights), one set of hidden-state layers and one normalisation; `cache.json` records them and a
mismatch is an error, never a silently wrong target.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2v_triton.serving.typing import AnyArray

log = logging.getLogger(__name__)

HEADER = "cache.json"


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the state dict (names, shapes, values): the same teacher gives the same hash."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()


def utterance_key(audio_path: str) -> str:
    """Names a row's cache file: the audio file's absolute path and size."""
    path = Path(audio_path).resolve()
    return hashlib.sha1(f"{path}:{path.stat().st_size}".encode()).hexdigest()


class TeacherCache:
    """float16 logits [T, V] and hidden states [L, T, D] (the `layers` indices of HF's
    hidden_states) per utterance key, one .npz each, written atomically."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str, layers: Sequence[int], do_normalize: bool):
        self.root = Path(root)
        self.layers = sorted({int(t) for t in layers})
        header = {"teacher_sha256": fingerprint, "hidden_layers": self.layers, "do_normalize": do_normalize,
                  "dtype": "float16"}
        path = self.root / HEADER
        if path.is_file():
            found = json.loads(path.read_text())
            if found != header:
                diff = sorted(k for k in header if found.get(k) != header[k])
                raise ValueError(f"teacher cache {self.root} was made for another setup ({', '.join(diff)} "
                                 f"differ): give another --teacher-cache dir or remove it")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(header, indent=1) + "\n")
            os.replace(tmp, path)
        self.hits = self.misses = 0

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, AnyArray] | None:
        path = self._file(key)
        if not path.is_file():
            return None
        with np.load(path) as data:
            return {"logits": data["logits"], "hidden": data["hidden"]}

    def put(self, key: str, logits: AnyArray, hidden: AnyArray) -> None:
        path = self._file(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, logits=logits.astype(np.float16), hidden=hidden.astype(np.float16))
        os.replace(tmp, path)

    def targets(self, keys: Sequence[str], frame_lengths: torch.Tensor, teacher_forward: Any
                ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The batch's teacher logits [B, T, V] and {layer: hidden [B, T, D]} (float32, zero
        beyond each row's frames): from the cache when every row is there, else from
        `teacher_forward()` (HF output with hidden_states), whose rows are then written."""
        found = [self.get(k) for k in keys]
        lengths = [int(n) for n in frame_lengths.tolist()]
        if any(f is None for f in found):
            out = teacher_forward()
            logits = out.logits.float().cpu().numpy()
            hidden = (torch.stack([out.hidden_states[t] for t in self.layers], 1).float().cpu().numpy()
                      if self.layers else np.zeros((logits.shape[0], 0, logits.shape[1], 1), np.float32))
            for i, (key, n) in enumerate(zip(keys, lengths, strict=True)):
                row = {"logits": logits[i, :n].astype(np.float16), "hidden": hidden[i, :, :n].astype(np.float16)}
                if found[i] is None:
                    self.put(key, row["logits"], row["hidden"])
                found[i] = row
            self.misses += 1
        else:
            self.hits += 1
        rows = [f for f in found if f is not None]
        frames = max(lengths)
        b, vocab = len(rows), rows[0]["logits"].shape[-1]
        n_layers, dim = rows[0]["hidden"].shape[0], rows[0]["hidden"].shape[-1]
        logits_t = torch.zeros(b, frames, vocab)
        hidden_t = torch.zeros(n_layers, b, frames, dim)
        for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
            if row["logits"].shape[0] != n:
                raise ValueError(f"teacher cache row has {row['logits'].shape[0]} frames, the audio {n}: "
                                 f"the cache does not match this audio (remove {self.root})")
            logits_t[i, :n] = torch.from_numpy(row["logits"].astype(np.float32))
            hidden_t[:, i, :n] = torch.from_numpy(row["hidden"].astype(np.float32))
        return logits_t, {t: hidden_t[j] for j, t in enumerate(self.layers)}
