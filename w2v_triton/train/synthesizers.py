"""The speech synthesisers the corpus speaks with: text -> float32 mono 16 kHz, one voice at a time.

Every kind is a Debian-main package that works offline, and each has training voices and held-out
voices (test_unseen only) that no kind uses in training:

  espeak    espeak-ng formant voices: 7 English accents x 11 variants; unseen: accent en-us-nyc
            (any variant) and variants m7, f5 (any accent)
  flite     CMU Flite 2.2 (`flite`, voices compiled into libflite1): kal (8 kHz diphone), kal16
            (diphone), awb (Scottish male), slt (US female) (both clustergen); unseen: rms (US male)
  festival  Festival 2.5 (`festival` + festvox-kallpc16k, festvox-us-slt-hts, festvox-kdlpc16k):
            kal_diphone, cmu_us_slt_arctic_hts (HMM); unseen: ked_diphone (US male)

MBROLA voices are not a kind: Debian 12 ships the `mbrola` engine in contrib and its voices
(mbrola-us1/us2/us3/en1) in non-free, under a licence that allows only non-commercial,
non-military use, which a corpus that trains a model shipped in this repository cannot accept.

`rate` is words per minute for every kind (espeak-ng's own unit; flite and festival stretch their
durations by NOMINAL_WPM / rate, festival's HMM voice takes the speed factor rate / NOMINAL_WPM). `pitch` is espeak-ng's 0-99 scale with 50 = the voice's own
pitch (flite scales the voice's mean f0 by 2 ** ((pitch - 50) / 100)); festival keeps its voices'
pitch (`uses_pitch` False; the corpus's speed perturbation still varies it).

`stream` is each kind's fixed identity: it seeds the kind's random draws and prefixes its file
names, so adding or removing a kind never changes another kind's utterances (espeak is stream 0,
which reproduces the espeak-only corpus of earlier versions file for file).
"""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, ClassVar

import numpy as np
import soundfile as sf
import soxr

from w2v_triton.serving.spec import SAMPLE_RATE
from w2v_triton.serving.typing import AnyArray

NOMINAL_WPM = 175.0          # the speaking rate flite and festival use unstretched

ESPEAK_TRAIN_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                        "en-gb-x-gbcwmd", "en-029")
ESPEAK_UNSEEN_ACCENTS = ("en-us-nyc",)
ESPEAK_TRAIN_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4")
ESPEAK_UNSEEN_VARIANTS = ("m7", "f5")


class SynthesisError(RuntimeError):
    """A synthesiser is missing or produced no audio."""


def _to_16k(audio: AnyArray, rate_hz: int) -> AnyArray:
    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    out: AnyArray = soxr.resample(mono.astype(np.float32), rate_hz, SAMPLE_RATE).astype(np.float32)
    return out


def _read_wav(path: Path, who: str) -> AnyArray:
    try:
        audio, rate_hz = sf.read(str(path), dtype="float32")
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise SynthesisError(f"{who} wrote no readable audio: {exc}") from None
    if len(audio) == 0:
        raise SynthesisError(f"{who} produced an empty waveform")
    return _to_16k(audio, int(rate_hz))


class Synthesizer:
    """One kind of synthesiser: its voices, its Debian packages, and how to run it."""

    name: ClassVar[str]
    stream: ClassVar[int]
    text_offset: ClassVar[float]     # where in the training sentences this kind starts speaking
    executable: ClassVar[str]
    env_var: ClassVar[str]           # overrides the executable's path (the offline GPU environment)
    packages: ClassVar[tuple[str, ...]]
    uses_pitch: ClassVar[bool] = True

    def training_voices(self) -> list[str]:
        raise NotImplementedError

    def unseen_voices(self) -> list[str]:
        raise NotImplementedError

    def find(self) -> str | None:
        path = os.environ.get(self.env_var) or shutil.which(self.executable)
        return path if path and os.access(path, os.X_OK) else None

    def installed_voices(self, binary: str) -> set[str] | None:
        """The voices this installation offers, where the synthesiser can list them."""
        return None

    def missing(self) -> str | None:
        """None when usable, else one line that says what to install."""
        hint = f"apt-get install {' '.join(self.packages)}"
        binary = self.find()
        if binary is None:
            return f"{self.name}: {self.executable} not found ({hint}, or set {self.env_var})"
        voices = self.installed_voices(binary)
        absent = [] if voices is None else [v for v in self.training_voices() + self.unseen_voices()
                                             if v not in voices]
        if absent:
            return f"{self.name}: voices {', '.join(absent)} not installed ({hint})"
        return None

    def _binary(self) -> str:
        path = self.find()
        if path is None:
            raise SynthesisError(self.missing() or self.name)
        return path

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> AnyArray:
        """`text` spoken by `voice` (one of this kind's voices) as float32 mono 16 kHz."""
        if voice not in self.training_voices() and voice not in self.unseen_voices():
            raise ValueError(f"{self.name} has no voice {voice!r} (voices: "
                             f"{', '.join(self.training_voices() + self.unseen_voices())})")
        return self._synthesize(text, voice, rate, pitch)

    def _synthesize(self, text: str, voice: str, rate: int, pitch: int) -> AnyArray:
        raise NotImplementedError


class Espeak(Synthesizer):
    name, stream, text_offset = "espeak", 0, 0.0
    executable, env_var, packages = "espeak-ng", "ESPEAK_NG", ("espeak-ng",)

    @staticmethod
    def voice_name(accent: str, variant: str) -> str:
        return accent + ("+" + variant if variant else "")

    def training_voices(self) -> list[str]:
        return [self.voice_name(a, v) for a in ESPEAK_TRAIN_ACCENTS for v in ESPEAK_TRAIN_VARIANTS]

    def unseen_voices(self) -> list[str]:
        """Voices with an accent or a variant that training never hears."""
        voices = [self.voice_name(a, v) for a in ESPEAK_UNSEEN_ACCENTS
                  for v in ESPEAK_TRAIN_VARIANTS + ESPEAK_UNSEEN_VARIANTS]
        return voices + [self.voice_name(a, v) for a in ESPEAK_TRAIN_ACCENTS for v in ESPEAK_UNSEEN_VARIANTS]

    def _synthesize(self, text: str, voice: str, rate: int, pitch: int) -> AnyArray:
        """Spoken in lower case (no acronym spelling); espeak-ng's WAV goes to stdout."""
        proc = subprocess.run([self._binary(), "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout",
                               text.lower()], capture_output=True, check=True)
        raw = proc.stdout
        if raw[:4] != b"RIFF" or len(raw) <= 44:
            raise SynthesisError(f"espeak-ng gave no audio for {voice!r}: {proc.stderr[-200:]!r}")
        rate_hz = int.from_bytes(raw[24:28], "little")
        # espeak-ng writes a streaming header (bogus length); the PCM starts at byte 44.
        pcm = np.frombuffer(raw[44: 44 + (len(raw) - 44) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        return _to_16k(pcm, rate_hz)


class Flite(Synthesizer):
    name, stream, text_offset = "flite", 1, 1 / 3
    executable, env_var, packages = "flite", "FLITE", ("flite",)
    # each voice's own mean f0 in Hz (measured on its default output), the base that `pitch` scales
    BASE_F0: ClassVar[dict[str, float]] = {"kal": 95.0, "kal16": 95.0, "awb": 125.0, "slt": 165.0,
                                           "rms": 100.0}

    def training_voices(self) -> list[str]:
        return ["kal", "kal16", "awb", "slt"]

    def unseen_voices(self) -> list[str]:
        return ["rms"]

    def installed_voices(self, binary: str) -> set[str] | None:
        listing = subprocess.run([binary, "-lv"], capture_output=True, text=True).stdout
        return set(listing.partition(":")[2].split())

    def _synthesize(self, text: str, voice: str, rate: int, pitch: int) -> AnyArray:
        f0 = self.BASE_F0[voice] * 2 ** ((pitch - 50) / 100)
        with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
            wav = Path(tmp) / "out.wav"
            proc = subprocess.run([self._binary(), "-voice", voice, "--setf", f"duration_stretch={NOMINAL_WPM / rate:.4f}",
                                   "--setf", f"int_f0_target_mean={f0:.1f}", "-t", text.lower(), "-o", str(wav)],
                                  capture_output=True)
            if proc.returncode != 0 or not wav.is_file():
                raise SynthesisError(f"flite failed for voice {voice!r}: {proc.stderr[-300:]!r}")
            return _read_wav(wav, f"flite ({voice})")


class Festival(Synthesizer):
    """One long-lived `festival --pipe` per worker process: starting festival (lexicon loading)
    costs ~0.6 s, an utterance 20-200 ms."""

    name, stream, text_offset = "festival", 2, 2 / 3
    executable, env_var = "festival", "FESTIVAL"
    packages = ("festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts")
    uses_pitch = False
    TIMEOUT_S: ClassVar[float] = 120.0
    # per process: festival, and its stderr (an unnamed temporary file: nothing is left behind)
    _running: ClassVar[dict[int, tuple[subprocess.Popen[str], IO[bytes]]]] = {}

    def training_voices(self) -> list[str]:
        return ["kal_diphone", "cmu_us_slt_arctic_hts"]

    def unseen_voices(self) -> list[str]:
        return ["ked_diphone"]

    def installed_voices(self, binary: str) -> set[str] | None:
        listing = subprocess.run([binary, "-b", "(print (voice.list))"], capture_output=True, text=True,
                                 timeout=self.TIMEOUT_S).stdout
        return set(listing.replace("(", " ").replace(")", " ").split())

    def _process(self) -> tuple[subprocess.Popen[str], IO[bytes]]:
        pid = os.getpid()   # a forked worker must not share its parent's festival
        running = self._running.get(pid)
        if running is None or running[0].poll() is not None:
            stderr = tempfile.TemporaryFile()
            proc = subprocess.Popen([self._binary(), "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=stderr, text=True, bufsize=1)
            running = self._running[pid] = (proc, stderr)
        return running

    def _synthesize(self, text: str, voice: str, rate: int, pitch: int) -> AnyArray:
        proc, stderr = self._process()
        assert proc.stdin is not None and proc.stdout is not None
        wav = Path(tempfile.gettempdir()) / f"festival-{os.getpid()}.wav"
        wav.unlink(missing_ok=True)
        spoken = text.lower().replace("\\", " ").replace('"', " ")
        # diphone voices stretch durations; the HMM voice (hts_engine) takes a speed factor instead
        command = (f"(voice_{voice}) (Parameter.set 'Duration_Stretch {NOMINAL_WPM / rate:.4f}) "
                   f"(set! hts_engine_params (append hts_engine_params (list (list \"-r\" {rate / NOMINAL_WPM:.4f})))) "
                   f"(utt.save.wave (utt.synth (Utterance Text \"{spoken}\")) \"{wav}\" 'riff) "
                   f"(format t \"ok\\n\") (fflush nil)\n")
        line = ""
        try:
            proc.stdin.write(command)
            proc.stdin.flush()
            if select.select([proc.stdout], [], [], self.TIMEOUT_S)[0]:
                line = proc.stdout.readline()
        except BrokenPipeError:   # festival died
            pass
        if line.strip() != "ok" or not wav.is_file():
            if not line:
                proc.kill()      # dead or hung: the next utterance starts a fresh one
            stderr.seek(0)            # (festival shares this offset: back to the end after reading)
            log = stderr.read().decode(errors="replace")[-300:]
            stderr.seek(0, os.SEEK_END)
            raise SynthesisError(f"festival gave no audio for voice {voice!r}: {log!r}")
        audio = _read_wav(wav, f"festival ({voice})")
        wav.unlink()
        return audio


SYNTHESIZERS: dict[str, Synthesizer] = {s.name: s for s in (Espeak(), Flite(), Festival())}


def get(name: str) -> Synthesizer:
    if name not in SYNTHESIZERS:
        raise ValueError(f"unknown synthesiser {name!r} (known: {', '.join(SYNTHESIZERS)})")
    return SYNTHESIZERS[name]

