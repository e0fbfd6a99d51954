"""Grid search of the beam decoder's alpha / beta / beam width on a dev manifest.

The acoustic logits are computed once (the repository's own ONNX model, through
`ReferencePipeline`); each grid point only re-runs the CTC decoder, with the LM loaded once
(`CTCDecoder.set_search` changes alpha/beta in place). For every point we report the corpus
WER and CER (jiwer) and the decode speed in audio seconds per CPU second of the decoding thread
(`time.thread_time`): one decoder instance uses one core, so that is the speed per core,
and it does not depend on what else runs on the machine.

The chosen point (lowest WER; ties -> the faster one) is written into the repository by
re-rendering it from its `build_info.json` with the new decoder values (the configs stay
template output, and build_info.json records them), and `decoder/tuning.json` keeps every
point plus the checkpoint/LM it was tuned for, so that `builders/repository.py` re-applies
the values on a rebuild with the same checkpoint and LM.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.eval.metrics import error_rates
from w2v_triton.serving.vocabulary import Vocabulary
from w2v_triton.serving.typing import AnyArray

logger = logging.getLogger(__name__)


@dataclass
class GridPoint:
    mode: str
    beam_width: int
    alpha: float
    beta: float
    wer: float
    cer: float
    audio_s: float
    decode_cpu_s: float
    decode_wall_s: float

    @property
    def speed_per_core(self) -> float:
        """Audio seconds decoded per CPU second (one core)."""
        return self.audio_s / max(self.decode_cpu_s, 1e-9)

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "speed_per_core": round(self.speed_per_core, 2)}


def compute_logits(repository: Path, audio_paths: list[Path], threads: int | None = None,
                   progress: bool = True) -> list[AnyArray]:
    """The repository acoustic model's logits for each file, one utterance at a time."""
    from tqdm import tqdm

    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.pipeline import ReferencePipeline

    pipeline = ReferencePipeline(repository, intra_op_threads=threads)
    return [pipeline.logits([load_audio(p)])[0]
            for p in tqdm(audio_paths, desc="acoustic logits", unit="utt", disable=not progress)]


def save_logits(path: Path, audio_paths: list[Path], logits: list[AnyArray]) -> None:
    """Logits of `audio_paths` (float32) in an npz, with the paths to check a later reuse."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, paths=np.array([str(Path(p).resolve()) for p in audio_paths]),
             **{f"l{i}": np.asarray(x, np.float32) for i, x in enumerate(logits)})


def cached_logits(path: Path | None, audio_paths: list[Path]) -> list[AnyArray] | None:
    """The cached logits when `path` holds exactly these audio files, else None."""
    if path is None or not Path(path).is_file():
        return None
    with np.load(path) as data:
        if data["paths"].tolist() != [str(Path(p).resolve()) for p in audio_paths]:
            logger.warning("%s holds other audio files; recomputing the logits", path)
            return None
        return [data[f"l{i}"].astype(np.float32) for i in range(len(audio_paths))]


def decode_all(decoder: CTCDecoder, logits: list[AnyArray]) -> tuple[list[str], float, float]:
    """Transcripts, decoding CPU seconds (this thread) and wall seconds."""
    cpu, wall = time.thread_time(), time.perf_counter()
    texts = [decoder.decode(x) for x in logits]
    return texts, time.thread_time() - cpu, time.perf_counter() - wall


def grid_search(vocab: Vocabulary | dict[str, int], decoder: CTCDecoder, logits: list[AnyArray],
                references: list[str], durations: list[float], alphas: list[float], betas: list[float],
                beam_widths: list[int], progress: bool = True, baselines: bool = True) -> list[GridPoint]:
    """Every (beam_width, alpha, beta) with `decoder` (beam + LM, loaded once); plus greedy and
    beam-without-LM (widest beam) baselines."""
    from tqdm import tqdm

    if not any(r.strip() for r in references):
        raise ValueError("the dev set has no reference transcripts")
    audio_s = float(sum(durations))
    points: list[GridPoint] = []

    def measure(decoder: CTCDecoder, mode: str, width: int, alpha: float, beta: float) -> None:
        texts, cpu, wall = decode_all(decoder, logits)
        points.append(GridPoint(mode, width, alpha, beta, *error_rates(references, texts), audio_s, cpu, wall))

    if baselines:
        measure(CTCDecoder(vocab), "greedy", 1, 0.0, 0.0)
        plain = CTCDecoder(vocab, replace(decoder.config, lm_path="", unigrams_path="", beam_width=max(beam_widths)))
        measure(plain, "beam", max(beam_widths), 0.0, 0.0)
    grid = [(w, a, b) for w in beam_widths for a in alphas for b in betas]
    for width, alpha, beta in tqdm(grid, desc="alpha/beta/beam grid", unit="point", disable=not progress):
        decoder.set_search(alpha=alpha, beta=beta, beam_width=width)
        measure(decoder, "beam+lm", width, alpha, beta)
    return points


def choose(points: list[GridPoint]) -> GridPoint:
    """Lowest WER among the LM points; ties go to the faster point."""
    lm_points = [p for p in points if p.mode == "beam+lm"]
    if not lm_points:
        raise ValueError("no beam+lm grid points")
    return min(lm_points, key=lambda p: (round(p.wer, 6), -p.speed_per_core))


def apply_to_repository(repository: Path, chosen: GridPoint, lm_files: list[Path], lm_name: str,
                        unigrams_name: str, backend: str | None = None) -> DecoderConfig:
    """Re-render `repository` from its build_info.json with the chosen decoder values."""
    from w2v_triton.build.checkpoints import read_checkpoint_info
    from w2v_triton.serving.acoustic import ONNX_FILE
    from w2v_triton.build.repository import BUILD_INFO, RepositoryOptions, render_repository

    build_info = json.loads((repository / BUILD_INFO).read_text())
    options = RepositoryOptions.from_dict(build_info["options"])
    options.decoder = replace(options.decoder, mode="beam", beam_width=chosen.beam_width, alpha=chosen.alpha,
                              beta=chosen.beta, lm_path=lm_name, unigrams_path=unigrams_name,
                              backend=backend or options.decoder.backend)
    onnx = Path(build_info["onnx"])
    if not onnx.is_file():
        onnx = repository / spec.ACOUSTIC_MODEL / "1" / ONNX_FILE
    info = read_checkpoint_info(Path(build_info["checkpoint"]))
    render_repository(info, onnx, repository, options, [f for f in lm_files
                                                         if f.resolve().parent != (repository / spec.DECODER_MODEL).resolve()])
    return options.decoder
