"""The deterministic review layer: CUAD-style risk categories by English and Chinese patterns, and the checks
rules can make on their own (missing signature, empty signature block, missing date, amounts whose words and
figures disagree). It always runs; the LLM only explains what it flags."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .structure import Structure
from .types import Finding, Severity, SignatureBlock


@dataclass(frozen=True)
class Category:
    id: str
    label: str
    severity: Severity
    reason: str
    en: str
    zh: str

    def match(self, text: str) -> bool:
        return bool(re.search(self.en, text, re.I) or re.search(self.zh, text))


CATEGORIES: list[Category] = [
    Category("limitation_of_liability", "Limitation of liability", "high",
             "caps or excludes a party's liability; check the cap against the contract value and the carve-outs",
             r"limitation of liability|aggregate liability|liabilit\w* (?:shall|will) (?:not|in no event) exceed|"
             r"in no event shall .{0,60}liab|shall not be liable for any (?:indirect|consequential)|"
             r"liabilit\w* .{0,30}(?:capped|limited to)",
             r"责任限制|赔偿责任总额不超过|责任.{0,12}(?:不超过|为限)|不承担.{0,8}间接损失"),
    Category("indemnification", "Indemnification", "high",
             "one party bears the other's losses and third-party claims; check scope, caps and who controls defence",
             r"indemnif|hold harmless|defend,? and hold",
             r"(?:应|须|负责)赔偿.{0,30}(?:一切|全部|所有)损失|免受.{0,10}(?:索赔|损害|追索)|予以补偿"),
    Category("auto_renewal", "Auto-renewal", "medium",
             "the contract renews itself unless notice is given in time; diarise the notice deadline",
             r"automatic(?:ally)? renew|auto-?renew|renews? automatically|evergreen|"
             r"successive (?:one-year |annual |renewal )?(?:periods|terms)",
             r"自动续(?:期|约|签|展)|自动延(?:长|期)|自动顺延"),
    Category("termination_for_convenience", "Termination for convenience", "high",
             "a party may end the contract without cause at short notice",
             r"terminat\w* .{0,60}(?:for convenience|at any time|without cause)|"
             r"(?:for convenience|without cause).{0,40}terminat",
             r"随时.{0,20}解除|单方解除|无需.{0,8}理由.{0,10}解除|提前.{0,8}日.{0,12}解除"),
    Category("non_compete", "Non-compete", "high",
             "restricts a party's business after or during the contract; check duration, territory and scope",
             r"non-?compet|shall not (?:directly or indirectly )?(?:engage|compete|invest).{0,80}compet",
             r"竞业|不得从事.{0,20}竞争|同业竞争"),
    Category("exclusivity", "Exclusivity", "medium",
             "binds a party to one supplier or customer; check the duration and any exit",
             r"exclusiv(?:e|ely|ity)(?!\s+jurisdiction)|sole (?:and exclusive )?(?:supplier|provider|source)",
             r"独家|排他|不得委托.{0,10}第三方"),
    Category("governing_law", "Governing law / jurisdiction", "low",
             "sets the law and forum for disputes; check they are not the counterparty's home forum only",
             r"governed by .{0,40}laws?|governing law|jurisdiction of .{0,30}courts?|arbitrat",
             r"适用.{0,20}法律|管辖|争议.{0,10}(?:解决|提交)|仲裁"),
    Category("penalty", "Penalty / liquidated damages", "high",
             "a fixed sum is due on breach; check it is proportionate to the likely loss",
             r"liquidated damages|penalt(?:y|ies)",
             r"违约金|罚款|罚金"),
    Category("confidentiality", "Confidentiality", "low",
             "confidentiality duties; check duration, exceptions and return of information",
             r"confidential|non-disclosure|shall not disclose",
             r"保密|商业秘密"),
    Category("assignment", "Assignment", "medium",
             "one party may transfer the contract; check consent rights and change of control",
             r"\bassign(?:s|ed|ment)?\b|transfer .{0,30}(?:this agreement|its rights)",
             r"转让|让与"),
    Category("payment_terms", "Payment terms", "medium",
             "sets fees, deadlines and late charges; check amounts, dates and interest",
             r"payable within|shall pay .{0,60}(?:fee|amount|sum|invoice)|invoice|late payments?|"
             r"interest of [\d.]+ ?%",
             r"(?:应|须)(?:于|在).{0,20}支付.{0,20}(?:费|款)|付款(?:方式|期限|条件)|逾期付款|发票|滞纳金"),
]
BY_ID = {c.id: c for c in CATEGORIES}
CHECKS = {"missing_signature": "high", "empty_signature_block": "medium", "missing_date": "medium",
          "amount_mismatch": "high"}


def classify(text: str) -> list[str]:
    """The categories whose patterns match a clause's text."""
    return [c.id for c in CATEGORIES if c.match(text)]


def parse_categories(text: str) -> list[str]:
    """Category ids named in a model's answer (ids or labels, any case, '_' or ' '); [] for 'none'."""
    low = text.lower().replace("_", " ").replace("-", " ")
    found = []
    for c in CATEGORIES:
        names = {c.id.replace("_", " "), c.label.lower().replace("-", " ")} | set(c.label.lower().split(" / "))
        if any(re.search(rf"\b{re.escape(n.strip())}\b", low) for n in names if n.strip()):
            found.append(c.id)
    return found


def review_clauses(st: Structure) -> list[Finding]:
    findings = []
    for clause in st.clauses:
        if not clause.number:  # the preamble states parties and dates, it carries no clause risk
            continue
        clause.categories = classify(clause.text)
        for cid in clause.categories:
            cat = BY_ID[cid]
            findings.append(Finding(category=cid, severity=cat.severity, clause_text=clause.text, page=clause.page,
                                    box=clause.box, reason=f"{cat.label}: {cat.reason}", clause_index=clause.index))
    return findings


def checks(st: Structure, blocks: list[SignatureBlock], n_pages: int) -> list[Finding]:
    """Findings rules can establish on their own."""
    out: list[Finding] = []
    last = st.clauses[-1] if st.clauses else None
    where = {"page": last.page if last else 1, "box": last.box if last else (0.0, 0.0, 1.0, 1.0)}
    if not st.effective_date:
        out.append(Finding(category="missing_date", severity="medium", clause_text="", source="check",
                           reason="no effective or signing date was found; a contract should state when it is "
                                  "made and takes effect", **where))
    for a in st.amounts:
        if a.words_value is not None and abs(a.words_value - a.value) > 0.005 * max(a.value, 1.0):
            clause = next((c for c in st.clauses if a.text in c.text), None)
            out.append(Finding(category="amount_mismatch", severity="high", clause_text=a.text, page=a.page,
                               box=clause.box if clause else where["box"], source="check",
                               clause_index=clause.index if clause else None,
                               reason=f"the amount in words ({a.words_value:,.2f}) disagrees with the figures "
                                      f"({a.value:,.2f} {a.currency}); the parties must agree which is meant"))
    roles = [p.role for p in st.parties]
    if not blocks:
        out.append(Finding(category="missing_signature", severity="high", clause_text="", source="check",
                           reason="no signature block was found in the document", **where))
        return out
    signed = {b.party for b in blocks if b.signed and b.party}
    for role in roles or sorted({b.party for b in blocks if b.party}):
        party_blocks = [b for b in blocks if b.party == role]
        if role not in signed:
            b = party_blocks[0] if party_blocks else blocks[0]
            out.append(Finding(category="missing_signature", severity="high", clause_text=b.label, page=b.page,
                               box=b.box, source="check",
                               reason=f"{role} has not signed or sealed: its signature block is empty"
                               if party_blocks else f"no signature block names {role}"))
        else:
            for b in party_blocks:
                if not b.signed:
                    out.append(Finding(category="empty_signature_block", severity="medium", clause_text=b.label,
                                       page=b.page, box=b.box, source="check",
                                       reason=f"{role} signed elsewhere but the block '{b.label}' is empty"))
    if not roles and not signed:
        out.append(Finding(category="missing_signature", severity="high", clause_text=blocks[0].label,
                           page=blocks[0].page, box=blocks[0].box, source="check",
                           reason="no signature block carries a signature or seal"))
    return out
