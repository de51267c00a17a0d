"""Customer-service latency on CPU: real-time factor per stage and time to first audio.

In one run, on calls synthesised with espeak-ng:
  * per stage: load + VAD, ASR (faster-whisper int8 and float32 against openai-whisper float32 on the same
    weights: the embedded CTranslate2 Whisper converted by puyu_apps.service.whisper_convert), LLM, TTS (espeak-ng
    against flite) as real-time factors (compute s / audio s), with the ASR word error rates;
  * time to first audio: sentence-by-sentence streaming against speaking the whole answer after generation;
  * dialogue turns with KV reuse across turns off and on (the engine's prefix reuse, llama.cpp backend): the
    prompt tokens each turn reads, the time to first token per turn, and the saving.

    .venv/bin/python benchmarks/service.py [--model smollm2-135m-instruct] [--turns 3] [--tokens 48]
        [--whisper tiny.en|base] [--threads 2] [--asr-only] [--openai-whisper-checkpoint FILE.pt]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from puyu_apps.core import GenerationConfig
from puyu_apps.errors import PuyuError
from puyu_apps.service import CustomerServicePipeline
from puyu_apps.service.asr import FasterWhisperASR, OpenAIWhisperASR, word_error_rate
from puyu_apps.service.audio import SAMPLE_RATE, detect_speech, load_audio, trim
from puyu_apps.service.tts import EspeakTTS, FliteTTS, SentenceSpeaker

CALLS = ["Hello, my order arrived damaged and I would like a refund please.",
         "Hi, where is my package? I ordered it last week and it has not arrived.",
         "I cannot log in to the app. How do I reset my password?"]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--openai-whisper-checkpoint",
                    help="an openai-whisper .pt file (default: the embedded Whisper converted from CTranslate2)")
    ap.add_argument("--whisper", default="tiny.en", choices=["tiny.en", "base"], help="embedded Whisper model")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of both ASR engines")
    ap.add_argument("--asr-only", action="store_true", help="stop after the ASR comparison")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="puyu-svc-bench-"))
    wavs = []
    for i, text in enumerate(CALLS):
        path = tmp / f"call{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        wavs.append(path)

    print("== audio in + VAD")
    clips, t_load = [], 0.0
    for w in wavs:
        (clip, dt) = timed(lambda: load_audio(w))
        regions, dt2 = timed(lambda: detect_speech(clip))
        clips.append((clip, regions))
        t_load += dt + dt2
    audio_s = sum(c.duration_s for c, _ in clips)
    print(f"{len(clips)} calls, {audio_s:.1f} s audio; load+resample+VAD RTF {t_load / audio_s:.4f}")

    print(f"== ASR (same audio, Whisper {args.whisper}, greedy, word timestamps, {args.threads} threads)")
    import torch

    torch.set_num_threads(args.threads)
    engines = {"faster-whisper int8": lambda: FasterWhisperASR(model=args.whisper, compute_type="int8",
                                                               threads=args.threads),
               "faster-whisper float32": lambda: FasterWhisperASR(model=args.whisper, compute_type="float32",
                                                                  threads=args.threads),
               # the same weights converted by puyu_apps.service.whisper_convert (or a given .pt)
               "openai-whisper float32": lambda: OpenAIWhisperASR(args.openai_whisper_checkpoint,
                                                                  model=args.whisper)}
    rtfs, texts = {}, {}
    for name, make in engines.items():
        try:
            asr, t_init = timed(make)
        except PuyuError as exc:
            print(f"{name:24s} skipped: {exc}")
            continue
        asr.transcribe([trim(*clips[0])[0]])  # warm (openai-whisper compiles its numba DTW on the first call)
        t_all, wers, texts[name] = 0.0, [], []
        for (clip, regions), text in zip(clips, CALLS):
            tr = asr.transcribe(trim(clip, regions), [s for s, _ in regions])
            t_all += tr.elapsed_s
            wers.append(word_error_rate(text, tr.text))
            texts[name].append(tr.text)
        rtfs[name] = t_all / audio_s
        print(f"{name:24s} load {t_init:5.2f} s | RTF {rtfs[name]:.3f} | mean WER {sum(wers) / len(wers):.3f} "
              f"(per call {' '.join(f'{w:.2f}' for w in wers)})")
    base = rtfs.get("faster-whisper int8")
    for name, r in rtfs.items():
        if base:
            print(f"  {name}: {r / base:.2f}x the time of faster-whisper int8")
    ow, fw = texts.get("openai-whisper float32"), texts.get("faster-whisper float32")
    if ow and fw:
        ratio = rtfs["openai-whisper float32"] / rtfs["faster-whisper float32"]
        between = sum(word_error_rate(a, b) for a, b in zip(fw, ow)) / len(ow)
        print(f"  openai-whisper / faster-whisper float32 time ratio {ratio:.2f}; "
              f"WER between their transcripts {between:.3f}")
    if args.asr_only:
        return

    print("== TTS")
    reply = "Refunds are issued to the original payment method within five business days. Damaged items are " \
            "refunded without a return. Is there anything else I can help with?"
    tts_rtf = {}
    for name, eng in (("espeak-ng", EspeakTTS()), ("flite", FliteTTS())):
        eng.synthesize("warm up")
        x, dt = timed(lambda: eng.synthesize(reply))
        tts_rtf[name] = dt / (len(x) / SAMPLE_RATE)
        print(f"{name:10s} RTF {tts_rtf[name]:.4f} ({len(x) / SAMPLE_RATE:.1f} s of speech in {dt:.2f} s)")
    print(f"  flite/espeak-ng time ratio {tts_rtf['flite'] / tts_rtf['espeak-ng']:.2f}")

    print(f"== LLM ({args.model}) and time to first audio")
    pipe = CustomerServicePipeline(model=args.model, db_url=f"sqlite:///{tmp / 'tickets.db'}", tts="espeak-ng",
                                   max_new_tokens=args.tokens, grounding="llm")
    pipe.warm_up()
    lm, espeak = pipe.lm, EspeakTTS()
    msgs = [{"role": "system", "content": "You are a polite customer service assistant."},
            {"role": "user", "content": CALLS[0]}]
    cfg = GenerationConfig(max_new_tokens=args.tokens)
    lm.generate(msgs, cfg)  # warm
    t0 = time.perf_counter()
    speaker = SentenceSpeaker(espeak)
    first = None
    ts = lm.stream(msgs, cfg)
    for piece in ts:
        if speaker.feed(piece) and first is None:
            first = time.perf_counter() - t0
    speaker.flush()
    t_stream = time.perf_counter() - t0
    first = first if first is not None else t_stream
    t0 = time.perf_counter()
    text = lm.generate(msgs, cfg).text
    espeak.synthesize(text)
    t_whole = time.perf_counter() - t0
    spoken = len(speaker.audio) / SAMPLE_RATE
    llm_s = ts.result.total_s if ts.result else 0.0
    print(f"LLM {ts.result.completion_tokens} tokens in {llm_s:.2f} s ({ts.result.tokens_per_s:.1f} tok/s); "
          f"RTF against the spoken reply {llm_s / max(spoken, 1e-6):.3f}")
    print(f"time to first audio: streaming by sentence {first:.2f} s | whole answer then TTS {t_whole:.2f} s | "
          f"ratio {t_whole / first:.1f}x")

    print(f"== dialogue turns: KV reuse across turns off, then on (engine: {lm.info().backend})")
    totals = {}
    for reuse in (False, True):
        lm.clear_prefix_cache()
        lm.prefix_cache = reuse
        sid = pipe.session().id
        ttfts, t_all = [], 0.0
        for i in range(args.turns):
            res, dt = timed(lambda: pipe(CALLS[i % len(CALLS)], session_id=sid))
            t_all += dt
            ttfts.append(res.timings_s["llm_ttft"])
            print(f"reuse {'on ' if reuse else 'off'} turn {i + 1}: {dt:.2f} s | prompt {res.llm_prompt_tokens} tokens, "
                  f"{res.llm_reusable_tokens} shared with the last turn, {res.llm_cached_tokens} not read again | "
                  f"time to first token {res.timings_s['llm_ttft']:.3f} s | "
                  f"time to first audio {res.time_to_first_audio_s or 0:.2f} s")
        totals[reuse] = (t_all, sum(ttfts[1:]) / max(1, len(ttfts) - 1))
    lm.prefix_cache = True
    (off_t, off_ttft), (on_t, on_ttft) = totals[False], totals[True]
    print(f"KV reuse across turns: turns 2..{args.turns} time to first token {off_ttft:.3f} s -> {on_ttft:.3f} s "
          f"({off_ttft / max(on_ttft, 1e-9):.2f}x); all turns {off_t:.2f} s -> {on_t:.2f} s")
    pipe.close()


if __name__ == "__main__":
    main()
