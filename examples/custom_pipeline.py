"""How an integrator adapts a built-in vertical: subclass it, override one stage, register it under a new name,
and serve it. ``python examples/custom_pipeline.py [CONTRACT.pdf [MODEL]]``

To ship such a vertical as a package instead (``pip install`` and it appears in ``puyu list`` and ``puyu serve``),
declare it under the entry-point group ``puyu_apps.verticals``: see ``examples/plugin_faq/`` and docs/plugins.md.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import puyu_apps
from puyu_apps.legal import ContractReview, ContractReviewPipeline
from puyu_apps.legal.types import Finding
from puyu_apps.pipelines import register

NOTICE = re.compile(r"\b(\d{2,3})\s*\)?\s*days?\b[^.]{0,40}\bnotice|\bnotice\b[^.]{0,60}?\((\d{2,3})\)\s*days", re.I)


class AcmeContractReview(ContractReviewPipeline):
    """The built-in review plus Acme's house rules: blocking categories and long notice periods."""

    name = "acme-legal"
    description = "Contract review with Acme's house rules (blocking categories, notice periods over 60 days)"
    blocking = ("non_compete", "exclusivity")  # categories Acme's lawyers must sign off
    max_notice_days = 60

    def postprocess(self, outputs: dict[str, Any]) -> ContractReview:
        review = super().postprocess(outputs)  # the stock result; only this stage changes
        for f in review.findings:
            if f.category in self.blocking:
                f.severity, f.reason = "high", f"Acme: needs legal sign-off. {f.reason}"
        for clause in review.clauses:
            days = [int(d) for m in NOTICE.finditer(clause.text) for d in m.groups() if d]
            if days and max(days) > self.max_notice_days:
                review.findings.append(Finding(
                    category="acme_notice_period", severity="medium", clause_text=clause.text, page=clause.page,
                    box=clause.box, clause_index=clause.index,
                    reason=f"Acme: a notice period of {max(days)} days; our limit is {self.max_notice_days}"))
        return review


def main() -> None:
    from puyu_apps.legal.samples import make_samples

    contract = sys.argv[1] if len(sys.argv) > 1 else str(make_samples("legal_samples")[0])
    model = sys.argv[2] if len(sys.argv) > 2 else "smollm2-135m-instruct"
    register("acme-legal", AcmeContractReview)  # run time; a package would use the entry point instead

    # 1. in Python, exactly like a built-in vertical
    with puyu_apps.pipeline("acme-legal", model=model, max_explanations=0) as review:
        result = review(contract)
    for f in result.findings:
        if f.reason.startswith("Acme"):
            print(f"[{f.severity}] {f.category}, page {f.page}: {f.reason}")

    # 2. over HTTP: a server started after register() has POST /v1/verticals/acme-legal (and jobs, and the web
    #    pages: ``examples/web`` works with any vertical whose result looks like the built-in one)
    import httpx

    from puyu_apps.serve import ServeConfig, ServerThread

    with tempfile.TemporaryDirectory() as data, ServerThread(ServeConfig(model=model, data_dir=data,
                                                                         require_api_key=False)) as server:
        with open(contract, "rb") as fh:
            answer = httpx.post(f"{server.url}/v1/verticals/acme-legal", files={"file": (Path(contract).name, fh)},
                                data={"params": '{"max_explanations": 0}'}, timeout=300).json()
    print(f"over HTTP: {len(answer['result']['findings'])} findings from {answer['vertical']}")


if __name__ == "__main__":
    main()
