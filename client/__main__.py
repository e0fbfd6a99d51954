"""`python -m client FILE...`: print the transcript of each audio file (wav/flac/ogg, any rate).

Each line is `FILE<TAB>TRANSCRIPT`; with --timestamps a third column holds the words as JSON
([{"word", "start_s", "end_s", "logprob"}, ...]). --hotwords "NAME,OTHER NAME" boosts those words in a beam-search
decoder (ignored by a greedy one). --send-file sends each file's bytes as they are (the AUDIO_FILE
input: the server decodes WAV/FLAC/OGG/MP3) instead of decoding here and sending float32 samples.

--stream sends each file as a stream of --chunk-seconds chunks to the `streaming_asr` model over
gRPC (--protocol is then grpc) and prints `FILE<TAB>partial<TAB>TEXT` whenever the open segment's
partial changes, and `FILE<TAB>final<TAB>TEXT` for each segment the server's VAD closes (with
--timestamps, its words as JSON); --realtime paces the chunks like a live source."""
from __future__ import annotations

import argparse
import json
import sys

from client import PROTOCOLS, AudioError, ClientError, TranscriptionClient, read_file
from w2v_triton.serving.audio import load_audio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--url", default=None, help="host:port (default 127.0.0.1:8000 http, :8001 grpc)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="http")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--hotwords", default=None, help="comma-separated words to boost (beam decoder)")
    parser.add_argument("--timestamps", action="store_true", help="add the words' times as a JSON column")
    parser.add_argument("--send-file", action="store_true",
                        help="send each file's bytes for the server to decode (default: decode here, send float32)")
    parser.add_argument("--stream", action="store_true", help="stream in chunks over gRPC: partials, then the final")
    parser.add_argument("--chunk-seconds", type=float, default=0.5, help="stream chunk length (default 0.5)")
    parser.add_argument("--realtime", action="store_true", help="stream at the audio's own pace")
    args = parser.parse_args(argv)
    if args.stream:
        args.protocol = "grpc"
    url = args.url or ("127.0.0.1:8001" if args.protocol == "grpc" else "127.0.0.1:8000")
    failures = 0
    with TranscriptionClient(url, args.protocol, args.timeout) as asr:
        for path in args.files:
            try:
                if args.stream:
                    shown = ""
                    for update in asr.stream(load_audio(path), args.chunk_seconds, args.realtime, args.hotwords):
                        for final in update.finals:
                            extra = f"\t{json.dumps(final['words'])}" if args.timestamps else ""
                            print(f"{path}\tfinal\t{final['text']}{extra}", flush=True)
                        if update.kind == "final":   # a segment's final alone: no partial in it
                            continue
                        if update.text and update.text != shown:
                            print(f"{path}\tpartial\t{update.text}", flush=True)
                        shown = update.text
                    continue
                audio = read_file(path) if args.send_file else load_audio(path)
                if args.timestamps:
                    result = asr.transcribe_full(audio, args.hotwords)
                    print(f"{path}\t{result.text}\t{json.dumps(result.words)}", flush=True)
                else:
                    print(f"{path}\t{asr.transcribe(audio, args.hotwords)}", flush=True)
            except AudioError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failures += 1
            except ClientError as exc:
                print(f"error: {path}: {exc}", file=sys.stderr)
                failures += 1
                if "cannot reach" in str(exc):
                    return 3
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
