"""Contract review in ten lines. ``python examples/legal_api.py [CONTRACT.pdf [MODEL]]``"""
import sys

import puyu_apps
from puyu_apps.legal.samples import make_samples

contract = sys.argv[1] if len(sys.argv) > 1 else make_samples("legal_samples")[0]  # English, digital, risks planted
model = sys.argv[2] if len(sys.argv) > 2 else "smollm2-135m-instruct"  # the embedded default model
with puyu_apps.pipeline("legal", model=model, max_explanations=3) as review:
    for event in review.stream(contract):  # progress events (pages, structure, explain), then the result
        if event.kind == "progress":
            print(f"  {event.stage}: {event.message}")
for f in event.result.findings:
    print(f"[{f.severity}] {f.category}, page {f.page}: {f.explanation or f.reason}")
event.result.to_pdf("review.pdf")  # the pages with flagged clauses, signature blocks and signatures drawn
