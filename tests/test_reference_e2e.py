"""Issue 3, end to end: the committed reference model (models/reference), built into a model
repository and served by a real tritonserver, transcribes freshly synthesised held-out sentences.

The sentences are the first 12 of the corpus's test_seen split (never in the training text),
spoken at test time by espeak-ng with a training voice, without augmentation. The decoder is
beam search with a word-bigram LM built from the corpus's *training* sentences only (a domain
LM, as a user would build from their own text). Measured when written (2026-11-26, en-us,
rate 160): pyctcdecode 9 of 12 exact, WER 0.033, CER 0.014; flashlight (2026-12-03) 8 of 12,
WER 0.130: its lexicon decoder spells only words of the LM, and a domain LM from a few thousand
sentences lacks held-out words ("KINKLER'S" -> "KIN LAS"; docs/decoding.md). The thresholds leave a
margin for rounding differences between machines, not for a model that stopped working.

Skips without espeak-ng or the Debian fortunes text (`make corpus-deps` installs both).
"""
from __future__ import annotations

import json

import jiwer
import numpy as np
import pytest
import soundfile as sf

from client.__main__ import main as client_main
from w2v_triton.build.builder import BuildRequest, build_repository
from w2v_triton.build.repository import RepositoryOptions
from w2v_triton.build.lm_sentences import write_lm_dir
from w2v_triton.serving.ctc_decoding import DecoderConfig
from w2v_triton.serving.pipeline import ReferencePipeline
from w2v_triton.serving.spec import SAMPLE_RATE
from w2v_triton.train import corpus
from w2v_triton.train.synthesizers import get as synthesizer
from w2v_triton.serving.tritonserver import Ports, TritonServer

pytestmark = pytest.mark.integration

VOICE, RATE, PITCH = "en-us", 160, 50
N_SENTENCES = 12


@pytest.fixture(scope="module")
def sentences() -> dict[str, list[str]]:
    if synthesizer("espeak").missing():
        pytest.skip("espeak-ng not installed (make corpus-deps)")
    try:
        return corpus.split_sentences(corpus.CorpusConfig())
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(f"fortunes text unavailable (make corpus-deps): {exc}")


@pytest.fixture(scope="module")
def fresh(sentences) -> list[tuple[str, np.ndarray]]:
    held_out = sentences["test_seen"][:N_SENTENCES]
    assert not set(held_out) & set(sentences["train"])
    return [(text, synthesizer("espeak").synthesize(text, VOICE, RATE, PITCH)) for text in held_out]


# backend -> (least exact of 12, largest WER)
BARS = {"pyctcdecode": (8, 0.10), "flashlight": (7, 0.18)}


@pytest.fixture(scope="module", params=list(BARS))
def reference_repository(request, tmp_path_factory, sentences):
    lm = write_lm_dir(tmp_path_factory.mktemp("domain_lm"), sentences["train"])
    out = tmp_path_factory.mktemp(f"reference_repository_{request.param}")
    decoder = DecoderConfig(mode="beam", beam_width=32, alpha=0.5, beta=1.0, backend=request.param)
    build_repository(BuildRequest(model="reference", output=out, lm_dir=lm,
                                  options=RepositoryOptions(decoder=decoder, decoder_instances=1)))
    return out


@pytest.fixture(scope="module")
def reference_server(reference_repository, tmp_path_factory):
    server = TritonServer(reference_repository, Ports.free(),
                          log_path=tmp_path_factory.mktemp("reference_log") / "server.log")
    server.start(timeout=240)
    yield server
    server.stop()


def test_served_reference_model_transcribes_fresh_sentences(reference_server, reference_repository, fresh,
                                                            tmp_path, capsys):
    files = []
    for i, (_, audio) in enumerate(fresh):
        files.append(tmp_path / f"fresh-{i:02d}.flac")
        sf.write(files[-1], audio, SAMPLE_RATE, subtype="PCM_16")
    # the user's path: python -m client FILE... against the served ensemble
    assert client_main([*map(str, files), "--url", reference_server.http_url]) == 0
    lines = [line.split("\t", 1) for line in capsys.readouterr().out.splitlines() if "\t" in line]
    served = dict((path, text) for path, text in lines)
    refs = [text for text, _ in fresh]
    hyps = [served[str(f)] for f in files]

    # served == in-process reference pipeline on the same audio (read back from the same files)
    pipeline = ReferencePipeline(reference_repository)
    assert hyps == [pipeline.transcribe(sf.read(f, dtype="float32")[0]) for f in files]

    exact = sum(r == h for r, h in zip(refs, hyps))
    wer = jiwer.wer(refs, hyps)
    detail = "\n".join(f"{r == h!s:5} {r} | {h}" for r, h in zip(refs, hyps))
    least_exact, most_wer = BARS[json.loads((reference_repository / "build_info.json").read_text())
                                 ["options"]["decoder"]["backend"]]
    assert exact >= least_exact and wer <= most_wer, f"{exact}/{len(refs)} exact, WER {wer:.3f}\n{detail}"
