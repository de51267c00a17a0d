"""Contract review benchmark on generated contracts (English/Chinese, digital/scanned, varied signatures, seals).

Prints, from one run on this machine:
  * pages/s: digital pages (text layer), scanned pages (our OCR: OMP_THREAD_LIMIT=1, pages in parallel, deskew)
    and a plain sequential pytesseract loop over the same scanned pages, with the ratio;
  * OCR character error rate (English, Chinese) against the generated text;
  * recall of planted risks and clause-level category precision; amount-mismatch checks;
  * signature and seal precision/recall (IoU >= 0.5) and party-level signed/unsigned accuracy;
  * a long digital PDF streamed page by page: pages/s and peak traced memory.

    .venv/bin/python benchmarks/legal.py            # ~2-3 min on 2 cores
    .venv/bin/python benchmarks/legal.py --n 4 --long-pages 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from puyu_apps.legal import ContractReviewPipeline  # noqa: E402
from puyu_apps.legal import sample_text as T  # noqa: E402
from puyu_apps.legal.ingest import IngestConfig, iter_pages  # noqa: E402
from puyu_apps.legal.metrics import cer, match_boxes  # noqa: E402
from puyu_apps.legal.samples import SampleSpec, make_contract  # noqa: E402

SIGNED = [(True, True), (True, False), (False, True), (False, False)]


def make_set(root: Path, n: int) -> list[tuple[Path, object]]:
    docs = []
    k = 0
    for lang in ("en", "zh"):
        for scanned in (False, True):
            for i in range(n):
                spec = SampleSpec(lang, scanned=scanned, signed=SIGNED[(i + k) % 4], seed=100 + k,
                                  seals=(i % 2 == 0) if lang == "en" else (i % 4 != 3), mismatch=i % 3 == 1,
                                  missing_date=i % 4 == 2, skew_deg=0.6 + 0.5 * (i % 3))
                path = root / f"c{k:03d}_{lang}_{'scan' if scanned else 'digital'}.pdf"
                docs.append((path, make_contract(path, spec)))
                k += 1
    return docs


def throughput(docs, workers: int) -> dict:
    out: dict = {}
    digital = [d for d in docs if not d[1].spec["scanned"]]
    scanned = [d for d in docs if d[1].spec["scanned"]]
    t, n = time.perf_counter(), 0
    for path, _ in digital:
        n += sum(1 for _ in iter_pages(path, IngestConfig(workers=workers)))
    out["digital"] = n / (time.perf_counter() - t)
    errs: dict[str, list[tuple[int, int]]] = {"en": [], "zh": []}
    t, n = time.perf_counter(), 0
    for path, truth in scanned:
        lang = truth.spec["lang"]
        pages = list(iter_pages(path, IngestConfig(workers=workers)))  # lang 'auto' as users run it
        n += len(pages)
        got = "".join(ln.text for p in pages for ln in p.lines)
        ref = "".join(truth.page_text)
        errs[lang].append((round(cer(got, ref) * len(ref)), len(ref)))
    out["scanned"] = n / (time.perf_counter() - t)
    out["cer"] = {k: sum(e for e, _ in v) / max(1, sum(r for _, r in v)) for k, v in errs.items() if v}
    out["baseline"] = baseline(scanned)
    out["n_digital"], out["n_scanned"] = sum(len(d[1].page_text) for d in digital), n
    return out


def baseline(scanned) -> float:
    """The plain way: render each page, one pytesseract call after another, tesseract's default threads."""
    import numpy as np
    import pypdfium2 as pdfium
    import pytesseract

    saved = os.environ.pop("OMP_THREAD_LIMIT", None)
    try:
        t, n = time.perf_counter(), 0
        for path, truth in scanned:
            lang = "eng" if truth.spec["lang"] == "en" else "chi_sim"
            doc = pdfium.PdfDocument(str(path))
            for i in range(len(doc)):
                img = np.asarray(doc[i].render(scale=200 / 72).to_pil().convert("RGB"))
                pytesseract.image_to_data(img, lang=lang)
                n += 1
            doc.close()
        return n / (time.perf_counter() - t)
    finally:
        if saved is not None:
            os.environ["OMP_THREAD_LIMIT"] = saved


def quality(docs, pipe) -> dict:
    planted = found = 0
    clause_tp = clause_fp = 0
    mism_planted = mism_found = mism_false = 0
    sig = {"signature": [0, 0, 0], "seal": [0, 0, 0]}
    party_ok = party_total = 0
    for path, truth in docs:
        result = pipe(path)
        cats = result.categories()
        planted += len(truth.risks)
        found += sum(r in cats for r in truth.risks)
        numbered = [c for c in result.clauses if c.number]
        table = T.EN_CLAUSES if truth.spec["lang"] == "en" else T.ZH_CLAUSES
        if len(numbered) == len(table):
            for clause, (cat, _, _) in zip(numbered, table):
                clause_tp += int(cat in clause.categories) if cat else 0
                clause_fp += sum(c != cat for c in clause.categories)
        mism = "amount_mismatch" in cats
        mism_planted += truth.mismatch
        mism_found += truth.mismatch and mism
        mism_false += (not truth.mismatch) and mism
        for kind in sig:
            pred = [(m.page, m.box) for m in result.signatures if m.kind == kind]
            gold = [(s["page"], s["box"]) for s in truth.signatures if s["kind"] == kind]
            for i, v in enumerate(match_boxes(pred, gold, 0.5)):
                sig[kind][i] += v
        for role, signed in truth.parties_signed.items():
            party_total += 1
            party_ok += result.parties_signed.get(role) == signed
    return {"recall": found / max(planted, 1), "planted": planted, "clause_precision":
            clause_tp / max(clause_tp + clause_fp, 1), "mismatch": (mism_found, mism_planted, mism_false),
            "sig": sig, "party_acc": party_ok / max(party_total, 1), "parties": party_total}


def signature_stress(root: Path, n: int) -> dict:
    """Detection only, on a harder set: varied strokes, most Chinese blocks sealed over the signature, half
    scanned; returns per-kind (tp, fp, fn) at IoU >= 0.5."""
    from puyu_apps.legal.signatures import detect_marks

    counts = {"signature": [0, 0, 0], "seal": [0, 0, 0]}
    for k in range(n):
        lang = "en" if k % 2 == 0 else "zh"
        spec = SampleSpec(lang, scanned=k % 4 >= 2, signed=[(True, True), (True, False), (False, True)][k % 3],
                          seals=(k % 5 != 0) if lang == "zh" else (k % 3 == 0), seed=500 + k)
        path = root / f"sig{k:03d}.pdf"
        truth = make_contract(path, spec)
        marks = []
        for page in iter_pages(path, IngestConfig(lang="eng" if lang == "en" else "chi_sim")):
            if page.image is not None:
                marks += detect_marks(page.image, page.words, page.info.page)
        for kind in counts:
            pred = [(m.page, m.box) for m in marks if m.kind == kind]
            gold = [(s["page"], s["box"]) for s in truth.signatures if s["kind"] == kind]
            for i, v in enumerate(match_boxes(pred, gold, 0.5)):
                counts[kind][i] += v
    return counts


def _pr(name: str, tp: int, fp: int, fn: int) -> str:
    return (f"{name}: precision {tp / max(tp + fp, 1):.1%} recall {tp / max(tp + fn, 1):.1%} "
            f"(tp {tp}, fp {fp}, fn {fn}; IoU >= 0.5)")


def long_pdf(root: Path, pages: int, pipe) -> dict:
    from reportlab.pdfgen import canvas

    path = root / "long.pdf"
    c = canvas.Canvas(str(path))
    for i in range(pages):
        c.setFont("Helvetica", 11)
        for j in range(3):
            c.drawString(60, 740 - 18 * j, f"{3 * i + j + 1}. Clause {3 * i + j + 1}. The Supplier shall deliver "
                                           "the goods within thirty days of the order.")
        c.showPage()
    c.save()
    tracemalloc.start()
    t = time.perf_counter()
    result = pipe(path)
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"pages": result.n_pages, "pages_s": pages / dt, "peak_mb": peak / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3, help="contracts per (language, digital/scanned) variant")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--long-pages", type=int, default=200)
    ap.add_argument("--sig-n", type=int, default=16, help="contracts in the signature stress set (0: skip)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        docs = make_set(root, args.n)
        print(f"generated {len(docs)} contracts in {time.perf_counter() - t:.1f} s "
              f"({sum(len(d[1].page_text) for d in docs)} pages); cores: {os.cpu_count()}, workers: {args.workers}")
        tp = throughput(docs, args.workers)
        print("\n== throughput (pages/s, same run) ==")
        print(f"digital pages (text layer, {tp['n_digital']} pages): {tp['digital']:.1f} pages/s")
        print(f"scanned pages, ours ({tp['n_scanned']} pages, deskew + lang auto, OMP_THREAD_LIMIT=1, "
              f"{args.workers} in parallel): {tp['scanned']:.2f} pages/s")
        print(f"scanned pages, plain sequential pytesseract loop: {tp['baseline']:.2f} pages/s   "
              f"ratio ours/plain = {tp['scanned'] / tp['baseline']:.2f}x")
        print("\n== OCR character error rate ==")
        for lang, v in tp["cer"].items():
            print(f"{lang}: {v:.2%}")
        pipe = ContractReviewPipeline(model="tiny-random-llama", max_explanations=0, workers=args.workers)
        q = quality(docs, pipe)
        print("\n== review quality (rule layer; the LLM only explains) ==")
        print(f"planted-risk recall: {q['recall']:.1%} of {q['planted']}   clause-level category precision: "
              f"{q['clause_precision']:.1%}")
        mf, mp, mx = q["mismatch"]
        print(f"words-vs-figures mismatches: found {mf}/{mp} planted, {mx} false alarms")
        for kind, (tp_, fp, fn) in q["sig"].items():
            print(_pr(kind + "s", tp_, fp, fn))
        print(f"party signed/unsigned correct: {q['party_acc']:.1%} of {q['parties']}")
        if args.sig_n:
            st = signature_stress(root, args.sig_n)
            print(f"\n== signature stress set ({args.sig_n} contracts, seals over signatures, detection only) ==")
            for kind, (tp_, fp, fn) in st.items():
                print(_pr(kind + "s", tp_, fp, fn))
        if args.long_pages:
            lp = long_pdf(root, args.long_pages, ContractReviewPipeline(model="tiny-random-llama",
                                                                        max_explanations=0, report_pages=3))
            print(f"\n== long PDF streamed ==\n{lp['pages']} pages: {lp['pages_s']:.1f} pages/s, peak traced "
                  f"memory {lp['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
