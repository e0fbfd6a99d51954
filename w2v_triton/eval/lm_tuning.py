"""Grid search of the beam decoder's alpha / beta / beam width on a dev manifest.

The acoustic logits are computed once (the repository's own ONNX model, through
`ReferencePipeline`); each grid point only re-runs the CTC decoder, with the LM loaded once
(`CTCDecoder.set_search` changes alpha/beta in place). For every point we report the corpus
WER and CER (jiwer) and the decode speed in audio seconds per CPU second of the decoding thread
(`time.thread_time`): one decoder instance uses one core, so that is the speed per core,
and it does not depend on what else runs on the machine.

`tune_repository(TuningRequest)` runs the whole search (what `make tune-lm` and `make bench-lm`
call); `apply_tuning` writes its result. The chosen point (lowest WER; ties -> the faster one) is
written into the repository by re-rendering it from its `build_info.json` with the new decoder
values (the configs stay template output, and build_info.json records them), and
`decoder/tuning.json` keeps every point plus the checkpoint/LM it was tuned for, so that
`builders/repository.py` re-applies the values on a rebuild with the same checkpoint and LM.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.build.manifest import read_manifest
from w2v_triton.build.repository import BUILD_INFO
from w2v_triton.build.tuning import TUNING_FILE, file_id, save_tuning
from w2v_triton.eval.metrics import error_rates
from w2v_triton.paths import LM_DIR, lm_files
from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.serving.pipeline import model_parameters
from w2v_triton.serving.typing import AnyArray
from w2v_triton.serving.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

DEFAULT_ALPHAS = (0.2, 0.5, 0.8, 1.2)
DEFAULT_BETAS = (0.0, 1.0, 2.0)
DEFAULT_BEAM_WIDTHS = (32,)


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


@dataclass(frozen=True)
class TuningRequest:
    """What to tune: the beam decoder of the repository `repo` on the `dev` manifests, over the grid
    alphas x betas x beam_widths. `lm_dir` None: the repository decoder's LM, else `make lm`'s folder.
    `backend` None: the repository decoder's. The logits are read from / written to `logits_cache`."""

    repo: Path
    dev: tuple[Path, ...]
    lm_dir: Path | None = None
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    betas: tuple[float, ...] = DEFAULT_BETAS
    beam_widths: tuple[int, ...] = DEFAULT_BEAM_WIDTHS
    backend: str | None = None
    max_utterances: int = 0               # the first N utterances (0 = all)
    threads: int | None = None            # onnxruntime threads for the logits
    logits_cache: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class Tuning:
    """What `tune_repository` measured: every grid point, the chosen one, and `result` (the content of
    decoder/tuning.json: the points, the choice and the checkpoint/LM it holds for)."""

    points: list[GridPoint]
    best: GridPoint
    result: dict[str, Any]
    lm_files: list[Path]
    lm_name: str
    unigrams_name: str
    backend: str


def resolve_lm(repo: Path, lm_dir: Path | None) -> tuple[list[Path], str, str]:
    """(files, lm name, unigrams name): `lm_dir`, else the repository's decoder LM, else the work
    directory's lm/ (what `make lm` writes)."""
    if lm_dir is not None:
        return lm_files(lm_dir)
    params = model_parameters(repo, spec.DECODER_MODEL)
    if params.get("lm_path"):
        decoder_dir = repo / spec.DECODER_MODEL
        files = [decoder_dir / params["lm_path"]] + (
            [decoder_dir / params["unigrams_path"]] if params.get("unigrams_path") else [])
        return files, params["lm_path"], params.get("unigrams_path", "")
    return lm_files(LM_DIR)


def tune_repository(request: TuningRequest) -> Tuning:
    """Load the LM once, compute (or reuse) the logits, search the grid. Raises FileNotFoundError,
    ValueError or DecoderConfigError (a missing/bad/mis-cased LM, no transcripts) before any logits."""
    utterances = [u for manifest in request.dev for u in read_manifest(manifest)]
    if request.max_utterances:
        utterances = utterances[: request.max_utterances]
    utterances = [u for u in utterances if u.text.strip()]
    if not utterances:
        raise ValueError(f"{' '.join(map(str, request.dev))}: no utterances with a transcript")
    files, lm_name, unigrams_name = resolve_lm(request.repo, request.lm_dir)
    vocab = Vocabulary.load_from_dir(request.repo / spec.DECODER_MODEL)
    served = DecoderConfig.from_parameters(model_parameters(request.repo, spec.DECODER_MODEL), check_files=False)
    backend = request.backend or served.backend
    lm_config = DecoderConfig(mode="beam", beam_width=request.beam_widths[0], lm_path=str(files[0]),
                              unigrams_path=str(files[1]) if len(files) > 1 else "", backend=backend,
                              beam_prune_logp=served.beam_prune_logp, token_min_logp=served.token_min_logp)
    decoder = CTCDecoder(vocab, lm_config)  # loads the LM once; a bad or mis-cased LM fails here
    audio = [u.audio for u in utterances]
    logits = cached_logits(request.logits_cache, audio)
    if logits is None:
        logits = compute_logits(request.repo, audio, request.threads, request.progress)
        if request.logits_cache:
            save_logits(request.logits_cache, audio, logits)
    references = [u.text.lower() if vocab.upper_case is False else u.text.upper() for u in utterances]
    points = grid_search(vocab, decoder, logits, references, [u.duration for u in utterances], list(request.alphas),
                         list(request.betas), list(request.beam_widths), progress=request.progress)
    best = choose(points)
    build_info = request.repo / BUILD_INFO
    result = {
        "dev": [str(d) for d in request.dev], "utterances": len(utterances),
        "audio_s": round(sum(u.duration for u in utterances), 3),
        "checkpoint": json.loads(build_info.read_text()).get("checkpoint", "") if build_info.is_file() else "",
        "lm": file_id(files[0]), "lm_path": str(files[0]), "backend": backend, "beam_prune_logp": served.beam_prune_logp,
        "token_min_logp": served.token_min_logp,
        "chosen": {"beam_width": best.beam_width, "alpha": best.alpha, "beta": best.beta},
        "chosen_wer": best.wer, "points": [p.row() for p in points],
    }
    return Tuning(points, best, result, files, lm_name, unigrams_name, backend)


def apply_tuning(repo: Path, tuning: Tuning) -> DecoderConfig:
    """Write decoder/tuning.json (a rebuild re-applies it) and re-render `repo` with the chosen values."""
    save_tuning(repo / spec.DECODER_MODEL, tuning.result)
    decoder = apply_to_repository(repo, tuning.best, tuning.lm_files, tuning.lm_name, tuning.unigrams_name,
                                  tuning.backend)
    logger.info("%s: decoder set to %s (results in %s)", repo, decoder, repo / spec.DECODER_MODEL / TUNING_FILE)
    return decoder
