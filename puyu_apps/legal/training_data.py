"""Training data for the legal LoRA adapter, generated from structured cases: one clause -> its category, risk
level and a short explanation grounded in the clause's own values.

Clauses are composed from templates written here, independently of the sample contracts
(:mod:`puyu_apps.legal.sample_text`) that the tests and ``benchmarks/legal.py`` use: every category has several
paraphrases per language, some of which the rule patterns catch and some they miss (so the adapter can add
what the rules do not), plus routine clauses and near-misses (``does not renew automatically``, ``non-exclusive``,
``exclusive jurisdiction``...). One paraphrase per category and language is reserved for the held-out split, so
part of the evaluation measures unseen phrasings, not unseen slot values only.

Each row is in the fine-tuning schema (:mod:`puyu_apps.finetune.data`) with ``system`` and ``instruction``
exactly what :class:`~puyu_apps.legal.pipeline.ContractReviewPipeline` sends for that clause
(:func:`puyu_apps.legal.review.review_messages`), and ``meta`` the structured truth.

Template syntax: ``{slot}`` is filled from the case (``slot_c`` is the clause's wording, ``slot`` the form the
explanation quotes); ``[a|b]`` picks one option; ``[#1 a|b]`` picks the same option index everywhere group 1
appears (clause and explanation agree).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import review, rules
from .structure import normalise

# -- the templates ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    cat: str
    lang: str
    body: str
    expl: str
    heldout: bool = False       # only in the held-out split: an unseen phrasing
    near_miss: bool = False     # wording that looks like another category
    headings: tuple[str, ...] = ()


def _t(cat: str, lang: str, rows: list[tuple], headings: tuple[str, ...] = ()) -> list[Template]:
    """rows: (body, explanation) or (body, explanation, flags) with flags a string containing 'h' (held out)
    and/or 'n' (near miss)."""
    out = []
    for row in rows:
        flags = row[2] if len(row) > 2 else ""
        out.append(Template(cat, lang, row[0], row[1], "h" in flags, "n" in flags, headings))
    return out


_EN_HEADINGS = {
    "limitation_of_liability": ("Limitation of Liability", "Liability", "Limits on Liability", "Liability Cap"),
    "indemnification": ("Indemnification", "Indemnity", "Indemnities", "Third-Party Claims"),
    "auto_renewal": ("Term and Renewal", "Term", "Renewal", "Duration"),
    "termination_for_convenience": ("Termination", "Termination for Convenience", "Early Termination",
                                    "Term and Termination"),
    "non_compete": ("Non-Competition", "Non-Compete", "Restrictive Covenants", "Restrictions"),
    "exclusivity": ("Exclusivity", "Exclusive Supply", "Exclusive Arrangement", "Supply"),
    "governing_law": ("Governing Law", "Governing Law and Jurisdiction", "Disputes", "Dispute Resolution"),
    "penalty": ("Liquidated Damages", "Penalties", "Breach", "Late Delivery", "Remedies"),
    "confidentiality": ("Confidentiality", "Confidential Information", "Non-Disclosure", "Secrecy"),
    "assignment": ("Assignment", "Assignment and Transfer", "Transfer", "Successors"),
    "payment_terms": ("Fees and Payment", "Payment", "Payment Terms", "Fees", "Price and Payment", "Invoicing"),
}
_ZH_HEADINGS = {
    "limitation_of_liability": ("责任限制", "责任上限", "赔偿责任限制"),
    "indemnification": ("赔偿", "赔偿责任", "第三方索赔", "损害赔偿"),
    "auto_renewal": ("合同期限", "期限与续期", "合同续期", "有效期"),
    "termination_for_convenience": ("合同解除", "合同终止", "提前解除", "解除与终止"),
    "non_compete": ("竞业限制", "不竞争", "限制性约定", "同业竞争"),
    "exclusivity": ("独家合作", "排他性", "独家供应", "合作方式"),
    "governing_law": ("争议解决", "法律适用", "适用法律与争议解决", "管辖"),
    "penalty": ("违约责任", "违约金", "迟延履行", "违约处理"),
    "confidentiality": ("保密条款", "保密", "保密义务", "商业秘密"),
    "assignment": ("权利转让", "转让", "合同转让", "权利义务转让"),
    "payment_terms": ("付款方式", "价款与支付", "付款", "费用与结算", "结算方式"),
}

EN: list[Template] = []
ZH: list[Template] = []

EN += _t("limitation_of_liability", "en", [
    ("{A}'s [maximum|aggregate|total] liability [under|arising out of] this Agreement [shall in no event exceed|is "
     "capped at|shall not exceed] [#1 the charges paid by {B} during the {months_c} before the claim arose|{amount_c}|"
     "{pct_c} of the fees paid under this Agreement][#2 . {A} [is not|shall not be] liable for [lost profits or |]"
     "indirect or consequential loss|].",
     "{A}'s liability is capped at [#1 the fees of the last {months}|{amount}|{pct} of the fees paid][#2  and "
     "indirect losses are excluded|]; check the cap against the contract value."),
    ("{A}'s liability for all claims [arising under|relating to] this Agreement[, whether in contract, tort or "
     "otherwise,|] shall be limited to [#1 {amount_c}|the amounts paid by {B} during the {months_c} before the "
     "claim|{pct_c} of the total contract price].",
     "{A}'s liability for all claims is limited to [#1 {amount}|the fees of the last {months}|{pct} of the "
     "contract price]; check the cap against the contract value."),
    ("{A}'s total responsibility for any losses under this Agreement [will not go beyond|is restricted to at "
     "most|may not be more than] [#1 {amount_c}|the amounts {B} paid in the previous {months_c}].",
     "{A}'s total responsibility is limited to [#1 {amount}|the fees of the last {months}]; {B} bears any loss "
     "above that."),
    ("Neither party shall be liable to the other for any loss of profits, loss of data or indirect [or "
     "consequential|, special or consequential] damages[#1 , and each party's maximum liability is {amount_c}|, "
     "even if advised of the possibility of such damages].",
     "Both parties exclude lost profits, lost data and indirect damages[#1  and cap liability at {amount}|]; "
     "check what remains recoverable."),
    ("Under no circumstances will {A} be liable for more than [#1 {amount_c}|the total fees received from {B} in "
     "the last {months_c}] in respect of all claims under this Agreement.",
     "{A} can never owe more than [#1 {amount}|the fees of the last {months}] for all claims; check the cap "
     "against the likely loss.", "h"),
], _EN_HEADINGS["limitation_of_liability"])

EN += _t("indemnification", "en", [
    ("{A} shall indemnify, defend and hold harmless {B}[ and its affiliates|, its officers and employees|] from "
     "and against [any and all|all] claims, losses, damages and expenses[ (including reasonable legal fees)|] "
     "arising out of {scope}.",
     "{A} must cover {B}'s losses and third-party claims arising from {scope}; check the scope and any cap."),
    ("{A} agrees to indemnify {B} against all [liabilities|losses] and costs resulting from {scope}[#1 , without "
     "limit|].",
     "{A} bears {B}'s losses and costs resulting from {scope}[#1 , with no cap|]; check who controls the "
     "defence."),
    ("{A} shall compensate {B} in full for all losses, costs and third-party claims [caused by|resulting "
     "from|that arise from] {scope}.",
     "{A} must make good all of {B}'s losses and third-party claims from {scope}; check the scope and any cap."),
    ("{A} will reimburse {B} for any damages, settlements and legal fees {B} incurs because of {scope}.",
     "{A} must reimburse {B}'s damages, settlements and legal fees caused by {scope}; check the scope."),
    ("{A} shall hold {B} harmless from every claim brought by a third party in connection with {scope}.",
     "{A} must protect {B} against third-party claims connected with {scope}; check the scope and any cap.",
     "h"),
], _EN_HEADINGS["indemnification"])

EN += _t("auto_renewal", "en", [
    ("The initial term of this Agreement is {term_c}. Thereafter it [shall renew|renews] automatically for "
     "[consecutive|further] terms of {renew_c} each, unless [a party|either party] [serves|gives] notice of "
     "non-renewal no later than {notice_c} prior to [expiry|the renewal date].",
     "The contract renews itself for {renew} at a time unless notice is given {notice} before the term ends; "
     "diarise the deadline."),
    ("Upon expiry of the initial term of {term_c}, this Agreement will renew automatically for further periods "
     "of {renew_c} unless terminated by either party on not less than {notice_c}' written notice.",
     "After the first {term} the contract renews automatically for {renew} at a time; notice is due {notice} "
     "before expiry."),
    ("The term shall be extended automatically by {renew_c} each time unless {A} notifies {B} in writing of its "
     "intention not to renew at least {notice_c} before the expiry date.",
     "The term extends itself by {renew} unless {A} objects {notice} before expiry; diarise the deadline."),
    ("Unless either party objects in writing at least {notice_c} before the end of the current term, the term "
     "continues for a further {renew_c}[, and so on thereafter| each time|].",
     "Silence extends the contract by {renew} each time; an objection is due {notice} before the term ends."),
    ("This is an evergreen agreement: after the first {term_c} it rolls over for {renew_c} at a time until one "
     "party cancels with {notice_c}' prior notice.",
     "The contract rolls over for {renew} at a time after the first {term}; cancelling needs {notice}' notice.",
     "h"),
], _EN_HEADINGS["auto_renewal"])

EN += _t("termination_for_convenience", "en", [
    ("[At any time during the term, |]{A} [shall be entitled to|has the right to] terminate this Agreement [for "
     "convenience|without cause|for any reason or no reason] by [giving|serving] {B} [at least |]{notice_c}' "
     "[written |prior written |]notice[#1 , without any liability to {B}| and without paying compensation|].",
     "{A} can end the contract without cause on {notice}' notice[#1 , owing {B} nothing|, owing nothing|]; {B} "
     "has little protection."),
    ("[Either party|Each of {A} and {B}|{A} or {B}] may terminate this Agreement [at any time|for convenience|"
     "without cause] by giving the other [party |]{notice_c}' [written |prior written |]notice.",
     "Either party can end the contract without cause on {notice}' notice; plan for a sudden end."),
    ("{A} may end this Agreement whenever it [wishes|chooses], without giving reasons, by sending {B} "
     "{notice_c}' written notice.",
     "{A} can end the contract whenever it likes on {notice}' notice; {B} has no protection."),
    ("{A} reserves the right to cancel this Agreement [at its sole discretion|for any reason] on {notice_c}' "
     "notice, and {B} shall have no claim for compensation.",
     "{A} can cancel at its discretion on {notice}' notice with no compensation to {B}."),
    ("Notwithstanding anything else in this Agreement, {A} may bring this Agreement to an end at any time on "
     "giving not less than {notice_c}' notice in writing.",
     "{A} may end the contract at any time on {notice}' notice without a reason.", "h"),
], _EN_HEADINGS["termination_for_convenience"])

EN += _t("non_compete", "en", [
    ("{A} [covenants|agrees] that, [while this Agreement is in force|during the term] and for {years_c} after it "
     "ends, it shall not[ directly or indirectly|] [carry on|be engaged in|be concerned in] any business "
     "[competing|in competition] with {B} [in|within] {territory}.",
     "{A} may not compete with {B} in {territory} during the term and for {years} after; check duration and "
     "scope."),
    ("{A} agrees to a non-compete obligation: for {years_c} after termination it will not offer {product} in "
     "{territory}.",
     "{A} cannot offer {product} in {territory} for {years} after the contract ends; check this is reasonable."),
    ("For {years_c} after this Agreement ends, {A} will not [operate|own or manage|work for] any business that "
     "offers {product} similar to those of {B} in {territory}.",
     "{A} is barred from businesses offering {product} in {territory} for {years} after the end."),
    ("{A} undertakes that, while this Agreement is in force and for {years_c} afterwards, it shall not supply "
     "{product} to any rival of {B} in {territory}.",
     "{A} may not supply {B}'s rivals with {product} in {territory} for {years} after the end."),
    ("{A} shall refrain from setting up or joining any undertaking that rivals {B}'s business in {territory} for "
     "a period of {years_c} from the date of termination.",
     "{A} may not set up or join a rival business in {territory} for {years} after termination.", "h"),
], _EN_HEADINGS["non_compete"])

EN += _t("exclusivity", "en", [
    ("During the term, {A} [agrees to|shall] [source|procure] [all of its|its entire] {product} on an exclusive "
     "basis from {B}[ and will not use competing suppliers|].",
     "{A} must buy {product} only from {B} for the whole term; check price protection and any exit."),
    ("{B} is appointed as the exclusive [supplier|provider] of {product} to {A}[#1  for a period of {years_c}|].",
     "{A} is tied to {B} as its only source of {product}[#1  for {years}|]; check the duration and any exit."),
    ("During the term, {A} will obtain all of its requirements for {product} solely from {B} and from no other "
     "source.",
     "{A} must source all its {product} from {B} alone during the term; check price and exit rights."),
    ("{A} shall not buy {product} from anyone other than {B} for {years_c} from the Effective Date.",
     "{A} may buy {product} only from {B} for {years}; check that {B}'s prices stay competitive."),
    ("{B} shall be {A}'s only provider of {product}, and {A} may not appoint a second provider while this "
     "Agreement remains in effect.",
     "{A} cannot use a second provider of {product} while the contract lasts; check the exit terms.", "h"),
], _EN_HEADINGS["exclusivity"])

EN += _t("governing_law", "en", [
    ("[This Agreement|This Agreement and any dispute arising from it] shall be governed by [and construed in "
     "accordance with |]the laws of {law_c}[#1 , and the parties submit to the exclusive jurisdiction of "
     "{forum_c}|, and each party submits to the non-exclusive jurisdiction of {forum_c}|].",
     "[#1 Disputes go to {forum} under {law} law|Disputes may go to {forum} under {law} law|The contract is "
     "governed by {law} law]; check this is not only the other party's home forum."),
    ("[Any dispute|Any dispute or claim|All disputes] arising out of or in connection with this Agreement shall "
     "be [finally |]resolved by {forum_c}[, and this Agreement is governed by the laws of {law_c}|; the governing "
     "law is that of {law_c}].",
     "Disputes go to {forum} under {law} law; check the cost of litigating there."),
    ("All [disagreements|controversies|differences] [under|about] this Agreement will be decided by {forum_c}, "
     "applying the law of {law_c}.",
     "Disagreements are decided by {forum} under {law} law; check the forum suits you."),
    ("[The parties irrevocably agree|It is agreed] that {forum_c} shall have exclusive jurisdiction over any "
     "[claim|dispute] arising from this Agreement, which is subject to {law} law.",
     "Claims go only to {forum} under {law} law; check this forum is acceptable.", "h"),
], _EN_HEADINGS["governing_law"])

EN += _t("penalty", "en", [
    ("[In case of|Upon] [any breach of this Agreement|a breach of Clause {ref}|a material breach] by {A}, {B} [is "
     "entitled to|may claim] liquidated damages [of|in the amount of] {amount_c}[ per breach| for each "
     "occurrence|].",
     "A breach by {A} lets {B} claim a fixed {amount} in liquidated damages; check it is proportionate."),
    ("For each [#1 day|week] of delay in delivery, {A} shall pay a penalty of {rate_c} of the contract "
     "price[#2 , up to a maximum of {pct_c}|].",
     "{A} pays {rate} of the price for each [#1 day|week] of late delivery[#2 , capped at {pct}|]; check the "
     "rate."),
    ("Should {A} fail to [perform|meet] its obligations under this Agreement, it must pay {B} a fixed sum of "
     "{amount_c} as compensation, without {B} having to prove any loss.",
     "A failure by {A} triggers a fixed {amount} without proof of loss; check it is proportionate."),
    ("Late completion will cost {A} {amount_c} for every [#1 day|week] of delay, which the parties agree is a "
     "genuine pre-estimate of loss.",
     "{A} owes {amount} for every [#1 day|week] of delay; check the rate against the real loss."),
    ("In the event of a breach of Clause {ref} by {A}, {A} shall forfeit and pay to {B} an agreed amount of "
     "{amount_c}.",
     "A breach of clause {ref} makes {A} pay an agreed {amount}; check it is proportionate.", "h"),
], _EN_HEADINGS["penalty"])

EN += _t("confidentiality", "en", [
    ("[Each party|{A} and {B} each] [agrees to|shall] [protect|safeguard] the Confidential Information of the "
     "other [party |]with at least reasonable care and [shall not|will not] [make it available|release it] to any "
     "third party[, except to its employees who need to know it|][#1  for {years_c} after termination| during "
     "the term and for {years_c} thereafter|].",
     "Both parties must keep each other's information secret[#1  for {years} after termination| for the term "
     "plus {years}| with no time limit]; check the exceptions."),
    ("{A} shall treat all [information|documents and data|technical and commercial information] received from "
     "{B} as confidential, use it only [to perform this Agreement|for the purposes of this Agreement] and "
     "[return or destroy it|return it|destroy it] [on termination|at the end of the term|on {B}'s request].",
     "{A} must keep {B}'s information secret, use it only for the contract and return it at the end."),
    ("{A} shall keep secret all non-public information it receives from {B} and shall use it only for the "
     "purposes of this Agreement for {years_c}.",
     "{A} must keep {B}'s non-public information secret for {years}; check the exceptions."),
    ("Neither party may [reveal|disclose|communicate] the terms of this Agreement or any [business|commercial|"
     "financial] information of the other to anyone except its [professional advisers|lawyers and accountants|"
     "auditors and legal advisers][#1 , for {years_c}|].",
     "Neither party may reveal the contract terms or the other's business information[#1  for {years}|]; "
     "advisers are the only exception."),
    ("{A} undertakes not to divulge any trade secrets of {B} learned during the performance of this Agreement, "
     "during its term and for {years_c} after its expiry.",
     "{A} may not divulge {B}'s trade secrets during the term and for {years} after; check the exceptions.",
     "h"),
], _EN_HEADINGS["confidentiality"])

EN += _t("assignment", "en", [
    ("{A} [is free to|may at any time] assign [this Agreement|its rights and obligations under this Agreement] to "
     "{successor} [without obtaining|without the need for] {B}'s [consent|prior consent|approval].",
     "{A} can hand the contract to {successor} without {B}'s consent; check change-of-control rights."),
    ("[Neither party|Neither {A} nor {B}] may assign [this Agreement|any of its rights under this Agreement|its "
     "rights or obligations under this Agreement] without the prior written consent of the other [party|][#1 , "
     "which shall not be unreasonably withheld| (not to be unreasonably withheld or delayed)|][, and any "
     "assignment in breach of this clause is void|].",
     "Neither party can assign the contract without the other's written consent[#1 , which may not be "
     "unreasonably withheld|, which may not be unreasonably withheld|]."),
    ("{B} may not assign any of its rights under this Agreement, but {A} may assign this Agreement [freely|at "
     "any time] to {successor}.",
     "Only {A} may assign the contract, to {successor}, while {B} is locked in; check for consent rights."),
    ("{A} may novate this Agreement to {successor} by written notice to {B}, and {B} shall sign any document "
     "needed for that purpose.",
     "{A} may novate the contract to {successor} by notice alone; {B} must cooperate."),
    ("Without requiring {B}'s approval, {A} is entitled to pass on its rights and duties under this Agreement to "
     "{successor}.",
     "{A} can pass the contract to {successor} without {B}'s approval; check who you end up dealing with.", "h"),
], _EN_HEADINGS["assignment"])

EN += _t("payment_terms", "en", [
    ("In consideration for the [Services|goods], {A} [shall pay|will pay] {B} [#2 an annual fee|a monthly fee|a "
     "quarterly fee|a one-off fee] of {amount_c}, [due|payable] within {days_c} of the invoice date[#1 ; overdue "
     "amounts accrue interest at {interest_c}|].",
     "{A} must pay [#2 a yearly fee|a monthly fee|a quarterly fee|a one-off fee] of {amount} within {days} of "
     "invoice[#1 ; overdue sums accrue {interest}|]."),
    ("The [total |]price of {amount_c} shall be paid by {A} within {days_c} of [#1 delivery|acceptance|the "
     "invoice date].",
     "{A} must pay {amount} within {days} of [#1 delivery|acceptance|the invoice date]; check the deadline."),
    ("{A} will settle each bill for the Services no later than {days_c} after receipt; overdue sums carry "
     "interest at {interest_c}.",
     "{A} must settle each bill within {days}; overdue sums cost {interest}."),
    ("{A} shall pay {pct_c} of the price of {amount_c} in advance and the balance within {days_c} after "
     "completion.",
     "{A} pays {pct} of {amount} in advance and the rest within {days} of completion."),
    ("Charges of {amount_c} [#1 per month|per year] fall due {days_c} from the date of each statement, failing "
     "which {A} owes interest of {interest_c} on the unpaid amount.",
     "{A} owes {amount} [#1 per month|per year] within {days} of each statement; late sums bear {interest}.",
     "h"),
], _EN_HEADINGS["payment_terms"])

EN += [
    Template("none", "en", "{B} [will perform|shall carry out] the {product} [set out|specified|listed] in [Schedule A|"
             "Annex 1|the Statement of Work] [in a professional manner|diligently and in a workmanlike manner|using "
             "suitably qualified personnel].",
             "A routine description of the {product}; no notable risk.", headings=("Services", "Scope of Services")),
    Template("none", "en", "All notices [under|given under|required by] this Agreement shall be [in writing|given in "
             "writing] and [delivered by hand, courier or email|sent by registered post or email|delivered "
             "personally or by courier|sent by email with a copy by post] to [the addresses set out above|the "
             "addresses stated in Schedule 1|the address each party last notified|the registered office of {A} "
             "or {B}][, and are deemed received on delivery|, and are deemed received two business days after "
             "posting|].",
             "A routine notice clause: notices must be in writing.", headings=("Notices",)),
    Template("none", "en", "This Agreement [constitutes|sets out|contains] the entire agreement between [the "
             "parties|{A} and {B}] and supersedes all prior [negotiations|understandings|agreements|proposals and "
             "representations][ relating to its subject matter| on this subject|].",
             "A standard entire-agreement clause: earlier promises no longer count.",
             headings=("Entire Agreement",)),
    Template("none", "en", "If any provision of this Agreement is [held|found|declared] [invalid|unenforceable|"
             "invalid or unenforceable|void][ by any court| by a competent authority|], the remaining provisions "
             "shall [remain in full force and effect|continue in effect|not be affected][, and the parties shall "
             "replace it with a valid provision of similar effect|].",
             "A standard severability clause; no notable risk.", headings=("Severability",)),
    Template("none", "en", "This Agreement may be [executed|signed] in [two|any number of|several] counterparts, "
             "each of which [is an original|shall be deemed an original][, and together they form one "
             "instrument|][, and copies exchanged by email are valid|, and electronic copies are effective|].",
             "A routine execution clause; no notable risk.", headings=("Counterparts",)),
    Template("none", "en", "No [amendment to|variation of|change to] this Agreement [is effective|shall be valid|"
             "binds either party] unless it is [in writing and signed by|made in writing and signed by|agreed in "
             "writing by] [both parties|authorised representatives of both parties|{A} and {B}].",
             "Changes need a written amendment agreed by both sides, which protects both parties.",
             headings=("Amendments", "Variation")),
    Template("none", "en", "[The parties|{A} and {B}] are independent contractors, and nothing in this Agreement "
             "[creates|shall create|constitutes] a [partnership, joint venture or employment relationship|"
             "partnership or agency|relationship of employer and employee] between them[; neither may bind the "
             "other|].",
             "Confirms the parties are independent; no notable risk.", headings=("Relationship of the Parties",)),
    Template("none", "en", "No [failure|failure or delay|delay] by {A} or {B} in exercising any [right|right or "
             "remedy] [shall operate as|is|will be] a waiver of [that right|it][, and no single exercise prevents "
             "further exercise|].", "A standard no-waiver clause; no notable risk.", headings=("Waiver",)),
    Template("none", "en", "Neither party [is responsible|shall be responsible|is answerable] for [any delay or "
             "failure|delay] caused by events beyond its reasonable control, such as [fire, flood, war or "
             "government action|natural disasters, epidemics or strikes|earthquakes, riots or power failures][, "
             "provided it notifies the other party promptly|, provided it informs the other party within "
             "{days_c}|].",
             "A standard force majeure clause for events beyond a party's control.", headings=("Force Majeure",)),
    Template("none", "en", "[Each party|{A}|{B}] shall comply with all [laws and regulations|applicable laws, "
             "regulations and codes of practice|anti-bribery and data protection laws] [applicable to its "
             "performance of this Agreement|in performing this Agreement|that apply to its business].",
             "A routine duty to obey the law; no notable risk.", headings=("Compliance with Laws", "Compliance")),
    Template("none", "en", "{B} shall maintain [general|professional|product] insurance cover of at least "
             "{amount_c} [throughout the term|for the duration of this Agreement|with a reputable insurer].",
             "{B} must keep insurance of at least {amount}, which protects {A}.",
             near_miss=True, headings=("Insurance",)),
    Template("none", "en", "This Agreement [expires|ends] at the end of {term_c} and [does not renew "
             "automatically|shall not be renewed automatically|will not renew automatically]; any [renewal|"
             "extension] requires a [new |]written agreement signed by [both parties|{A} and {B}].",
             "The contract simply ends after {term}; it does not renew by itself.", near_miss=True,
             headings=("Term", "Duration")),
    Template("none", "en", "[Neither party|Neither {A} nor {B}] may terminate this Agreement for convenience; "
             "[either party|a party] may terminate only [if the other commits|for] a material breach [that is not "
             "cured|that remains uncured|not remedied] within {days_c} of [notice|written notice].",
             "Termination needs an uncured material breach after {days}; there is no convenience exit.",
             near_miss=True, headings=("Termination",)),
    Template("none", "en", "This Agreement is non-exclusive, and {A} remains free to [buy|obtain|purchase] "
             "{product} from [other suppliers|third parties|any other source].",
             "The deal is non-exclusive; {A} may also buy {product} elsewhere.",
             near_miss=True, headings=("Non-Exclusivity", "Supply")),
    Template("none", "en", "Nothing in this Agreement [prevents|restricts|prohibits] [either party|{A}|{B}] from "
             "[developing or marketing|independently developing, buying or selling|offering] [products|services|"
             "products or services] that compete with those of the other party.",
             "The parties stay free to compete; no restriction applies.", near_miss=True,
             headings=("Independent Development", "Freedom to Compete")),
    Template("none", "en", "[The headings|Clause headings|Headings and the table of contents] [in|of] this "
             "Agreement are [for convenience only|inserted for convenience only|for ease of reference only] and "
             "[do not affect its interpretation|shall not affect its construction|have no legal effect].",
             "A standard interpretation clause; no notable risk.", near_miss=True,
             headings=("Interpretation", "Headings")),
    Template("none", "en", "[Each party|{A} and {B} each] shall [bear|pay] its own [costs and expenses|legal and "
             "other costs|costs, including legal fees,] incurred in [the negotiation and preparation of|"
             "negotiating, preparing and signing|connection with the negotiation of] this Agreement.",
             "Each party pays its own negotiation costs; no notable risk.", near_miss=True, headings=("Costs",)),
    Template("none", "en", "Nothing in this Agreement [limits|excludes|limits or excludes] [either party's|{A}'s|"
             "{B}'s] liability for [#1 fraud|fraud or fraudulent misrepresentation|death or personal injury caused "
             "by negligence|any liability that cannot be limited by law].",
             "Liability for [#1 fraud|fraud|death or personal injury|what the law does not allow to be limited] "
             "stays unlimited, which protects the injured party.", near_miss=True,
             headings=("Liability", "Exceptions")),
    Template("none", "en", "[Each party|{A}|{B}] [warrants|represents and warrants|confirms] that it has [full "
             "power and authority|the corporate power and authority|all approvals needed] to [enter into and "
             "perform|sign and perform|enter into] this Agreement.",
             "A standard authority warranty; no notable risk.", heldout=True, headings=("Warranties", "Authority")),
    Template("none", "en", "Any extension of this Agreement beyond {term_c} [requires|shall require|is subject to] "
             "the [written agreement|prior written consent] of [both parties|{A} and {B}].",
             "The contract can be extended after {term} only in writing; nothing renews by itself.",
             heldout=True, near_miss=True, headings=("Term", "Extension")),
]

ZH += _t("limitation_of_liability", "zh", [
    ("{A}根据本合同承担的[累计|]赔偿责任总额不超过[#1 {amount_c}|{B}已付款项的{pct_c}|{B}此前{months_c}内支付的款项]"
     "[#2 ，{A}亦不对间接损失负责|]。",
     "{A}的赔偿责任以[#1 {amount}|已付款项的{pct}|{months}内的付款]为上限[#2 ，不赔间接损失|]，请核对上限。"),
    ("{A}对本合同引起的一切损失承担的责任，以[#1 {amount_c}|合同总价款的{pct_c}]为限。",
     "{A}的责任以[#1 {amount}|合同总价的{pct}]为限，超出部分由{B}自担。"),
    ("{A}就本合同承担的全部责任最高不得超过[#1 {amount_c}|合同总价款的{pct_c}]。",
     "{A}的全部责任最高为[#1 {amount}|合同总价的{pct}]，请核对该上限。"),
    ("[任何一方均|双方均|{A}和{B}均]不对另一方的[利润损失|可得利益损失|预期利润损失]、[数据丢失|商誉损失|数据丢失或商誉损失]"
     "或其他间接损失承担责任[#1 ，但故意或重大过失除外|]。",
     "双方均不赔偿利润和间接损失[#1 ，故意或重大过失除外|]。"),
    ("无论基于何种原因，{A}累计赔付金额均以[#1 {amount_c}|{B}最近{months_c}支付的费用]封顶。",
     "{A}累计赔付以[#1 {amount}|最近{months}的费用]封顶，请核对是否足够。", "h"),
], _ZH_HEADINGS["limitation_of_liability"])

ZH += _t("indemnification", "zh", [
    ("对于{B}因{A}{scope_c}所遭受的[全部|一切]损失，{A}应[予以赔偿|负责赔偿][#1 ，并确保{B}免受任何第三方的追索|]。",
     "{A}须赔偿{B}因{A}{scope}产生的损失[#1 和第三方追索|]。"),
    ("因{A}{scope_c}导致{B}遭受任何索赔、损失或费用的，{A}应负责赔偿全部损失。",
     "{A}须赔偿{B}因{A}{scope}产生的全部索赔和损失。"),
    ("{A}应承担{B}因{A}{scope_c}而产生的全部损失、律师费及第三方索赔。",
     "{A}要承担{B}因{A}{scope}产生的损失、律师费和索赔。"),
    ("如第三方因{A}{scope_c}向{B}主张权利，{A}应自费处理并承担{B}的全部支出。",
     "第三方因{A}{scope}索赔时，由{A}自费处理并承担{B}的支出。"),
    ("{A}保证{B}不因{A}{scope_c}而承担任何责任，{B}因此支出的费用由{A}全额补足。",
     "{B}因{A}{scope}产生的责任和费用都由{A}承担。", "h"),
], _ZH_HEADINGS["indemnification"])

ZH += _t("auto_renewal", "zh", [
    ("本合同自生效之日起[有效|持续]{term_c}；[期限届满时|期满时]如任何一方未提前{notice_c}以书面方式提出不再续约，"
     "则合同自动续期{renew_c}。",
     "合同期满自动续期{renew}，不续约须提前{notice}书面提出。"),
    ("本合同期满后自动延长{renew_c}，以此类推，但一方提前{notice_c}书面提出终止的除外。",
     "合同每次自动延长{renew}，终止须提前{notice}书面提出。"),
    ("合同期满前{notice_c}内双方均未提出书面异议的，本合同有效期延续{renew_c}，续展次数不限。",
     "期满前{notice}内无人异议，合同即延续{renew}，次数不限。"),
    ("除非{A}在本合同到期前{notice_c}以书面形式表示不再合作，本合同将按原条件继续履行{renew_c}。",
     "{A}不在到期前{notice}书面表示不续约，合同将再履行{renew}。"),
    ("本合同首期为{term_c}，到期后如双方未另行约定，合同自动顺延{renew_c}。",
     "首期{term}届满后合同自动顺延{renew}，请提前约定。", "h"),
], _ZH_HEADINGS["auto_renewal"])

ZH += _t("termination_for_convenience", "zh", [
    ("{A}[有权|可以]在合同期内任何时候提前{notice_c}以书面方式通知{B}[解除|单方解除]本合同[#1 ，且不因此承担任何责任|]。",
     "{A}可随时提前{notice}通知解除合同[#1 且不担责|]，{B}缺乏保障。"),
    ("任何一方均可[随时|无需任何理由]提前{notice_c}以书面形式通知对方解除本合同。",
     "双方均可无理由提前{notice}通知解除合同，请做好准备。"),
    ("{A}有权在任何时候以书面形式通知{B}终止本合同，无需说明理由，终止自通知送达后{notice_c}生效。",
     "{A}可随时无理由终止合同，通知{notice}后生效。"),
    ("{A}可根据自身经营需要决定终止本合同，但应提前{notice_c}告知{B}，{B}不得要求任何补偿。",
     "{A}可提前{notice}终止合同，{B}无权获得补偿。"),
    ("在合同履行期间，{A}保留随时结束合作的权利，仅需提前{notice_c}通知{B}。",
     "{A}可随时结束合作，只需提前{notice}通知。", "h"),
], _ZH_HEADINGS["termination_for_convenience"])

ZH += _t("non_compete", "zh", [
    ("{A}在{territory}范围内不得从事与{B}[存在竞争关系|相竞争]的[业务|经营活动]，期限为合同存续期间及终止后{years_c}。",
     "{A}在合同期内及结束后{years}内不得在{territory}与{B}竞争。"),
    ("{A}承担竞业限制义务，合同终止后{years_c}内不得在{territory}提供{product}。",
     "{A}在合同结束后{years}内不得在{territory}提供{product}。"),
    ("合同终止后{years_c}内，{A}不得在{territory}经营或参与经营与{B}业务相同或类似的业务。",
     "{A}在合同结束后{years}内不得在{territory}经营类似业务。"),
    ("{A}承诺，合作期间及合作结束后{years_c}内，不向{B}的同类企业提供{product}。",
     "{A}在合作期间及结束后{years}内不得向{B}的同行提供{product}。"),
    ("未经{B}书面同意，{A}在本合同终止之日起{years_c}内不得在{territory}设立或加入与{B}存在竞争关系的企业。",
     "{A}在合同终止后{years}内不得在{territory}设立或加入竞争企业。", "h"),
], _ZH_HEADINGS["non_compete"])

ZH += _t("exclusivity", "zh", [
    ("{A}[确认|同意]，在合同期内由{B}[独家|排他地]供应{product}，{A}[不会|不得]委托其他第三方提供同类[服务|产品]。",
     "{A}只能从{B}获得{product}，请核对价格和退出机制。"),
    ("合同期内，{A}[只能|仅能]向{B}采购{product}，不得另行向其他供应商采购。",
     "合同期内{A}只能向{B}采购{product}，请核对退出机制。"),
    ("{B}在{territory}享有{product}的排他性经销权[#1 ，期限为{years_c}|]。",
     "{B}在{territory}独占{product}经销权[#1 ，期限{years}|]，请核对退出条件。"),
    ("{years_c}内，{A}所需的全部{product}均应由{B}供应，{A}不得自行或通过他人采购。",
     "{years}内{A}所需{product}全部由{B}供应，请核对价格。"),
    ("在本合同有效期内，{B}是{A}{product}的唯一提供方，{A}不得引入其他提供方。",
     "合同期内{A}只能由{B}提供{product}，请核对退出条件。", "h"),
], _ZH_HEADINGS["exclusivity"])

ZH += _t("governing_law", "zh", [
    ("本合同的[解释和履行|效力、解释和履行]适用{law_c}；凡因本合同[产生|引起]的[争议|一切争议]，[双方应先协商；协商不成的，|]"
     "{forum_c}。",
     "合同适用{law}，争议由{forum}解决。"),
    ("双方因[履行|订立或履行|执行]本合同发生的[一切|任何|]争议，[应首先友好协商；协商不成的，|]{forum_c}。",
     "履约争议由{forum}解决，请确认是否方便。"),
    ("双方因本合同发生[纠纷|分歧|矛盾]的，由{court}[审理|受理|裁判]。",
     "纠纷由{court}审理，请确认对己方是否方便。"),
    ("本合同的订立、效力和解释均受{law_c}约束，任何纠纷均由{court}专属管辖。",
     "合同受{law}约束，纠纷专属{court}管辖。", "h"),
], _ZH_HEADINGS["governing_law"])

ZH += _t("penalty", "zh", [
    ("[如|若]任何一方[违反本合同约定|不履行合同义务]，[违约方|该方]须向[另一方|守约方][一次性|]支付[违约金|违约金共计]{amount_c}。",
     "违约方须付固定违约金{amount}，请核对是否相称。"),
    ("{A}逾期交付的，每逾期一日，应按合同总价款的{rate_c}向{B}支付违约金[#1 ，最高不超过合同总价款的{pct_c}|]。",
     "{A}每逾期一日付总价的{rate}[#1 ，上限{pct}|]。"),
    ("{A}未按约定履行义务的，应一次性向{B}支付赔偿金{amount_c}，{B}无需证明实际损失。",
     "{A}违约即付固定赔偿金{amount}，无需证明损失。"),
    ("{A}擅自解除本合同的，应向{B}一次性赔付{amount_c}。",
     "{A}擅自解约须一次性赔付{amount}，请核对是否合理。"),
    ("如{A}违反第{ref_zh}条的约定，{A}应向{B}承担{amount_c}的违约赔偿。",
     "{A}违反第{ref_zh}条须赔付{amount}，请核对是否相称。", "h"),
], _ZH_HEADINGS["penalty"])

ZH += _t("confidentiality", "zh", [
    ("双方对[合作中|履行本合同过程中|洽谈和履约中]获得的对方[技术信息和经营信息|商业秘密|非公开信息]负有保密义务[#1 ，期限为合同终止后{years_c}|，该义务在合同终止后继续有效]。",
     "双方须对彼此信息保密[#1 ，期限为合同终止后{years}|，合同结束后仍有效]。"),
    ("{A}应对{B}提供的[全部资料|技术资料|各类文件和数据]严格保密，仅可用于[履行本合同|本项目]，并在合同[终止|履行完毕]时"
     "[返还或销毁|予以返还|全部销毁]。",
     "{A}须对{B}的资料保密，仅用于本合同，结束时返还。"),
    ("未经{B}书面同意，{A}不得向任何人披露其在合作中获悉的{B}技术资料和经营信息[#1 ，期限为{years_c}|]。",
     "{A}未经同意不得披露{B}的信息[#1 ，期限{years}|]。"),
    ("[任何一方均|双方均|{A}和{B}均]不得向第三方[透露|披露|泄露]本合同的[内容|条款|价格条款]及对方的[内部信息|经营信息|"
     "财务信息]，但向[律师、会计师等专业顾问|审计师和法律顾问|监管机构依法]披露的除外。",
     "双方不得向第三方透露合同内容和内部信息，顾问除外。"),
    ("{A}承诺在合同期内及合同终止后{years_c}内，不泄露其知悉的{B}任何非公开信息。",
     "{A}在合同期内及结束后{years}内不得泄露{B}的信息。", "h"),
], _ZH_HEADINGS["confidentiality"])

ZH += _t("assignment", "zh", [
    ("{A}有权将其在本合同项下的全部或部分权利义务转让予{successor}，且不必取得{B}的同意。",
     "{A}可不经{B}同意把合同转让给{successor}。"),
    ("未经[对方|另一方][书面|事先书面]同意，任何一方不得[转让|向第三方转让|转让或转授]本合同项下的[任何|全部或部分]"
     "权利[义务|和义务][#1 ，否则转让无效|]。",
     "任何一方未经对方书面同意不得转让合同[#1 ，否则转让无效|]。"),
    ("{B}不得转让本合同，但{A}可随时将本合同转让给{successor}。",
     "只有{A}可把合同转让给{successor}，{B}被锁定。"),
    ("{A}可将本合同项下的全部权利和义务一并移交给{successor}承接，{B}应予配合。",
     "{A}可把合同整体移交给{successor}，{B}须配合。"),
    ("{A}无需取得{B}的许可，即可由{successor}概括承受其在本合同中的地位。",
     "{A}可不经{B}许可由{successor}承受其合同地位。", "h"),
], _ZH_HEADINGS["assignment"])

ZH += _t("payment_terms", "zh", [
    ("{A}应在[#2 验收合格|收到货物|合同签订]后{days_c}内向{B}付清[服务费|货款]{amount_c}[#1 ，逾期按每日{rate_c}计收滞纳金|]。",
     "{A}须在[#2 验收|收货|签约]后{days}内付清{amount}[#1 ，逾期每日加收{rate}|]。"),
    ("合同总价款为{amount_c}，{A}应于[#1 每月|每季度]末前结清当期款项，{B}应同时开具合法发票。",
     "合同总价{amount}，{A}须[#1 按月|按季]付款，{B}须开票。"),
    ("{A}分两期付款：签约后{days_c}内预付{pct_c}，余款{amount_c}于交付后一次结清。",
     "{A}须在签约后{days}内预付{pct}，余款{amount}交付后结清。"),
    ("{A}每月向{B}结算上月费用{amount_c}，结算后{days_c}内到账；迟延的，按日加收未付金额的{rate_c}。",
     "{A}每月须结算{amount}，{days}内到账，迟延按日加收{rate}。"),
    ("{B}交付后，{A}应在{days_c}内将{amount_c}汇入{B}指定账户。",
     "{A}须在交付后{days}内把{amount}汇给{B}。", "h"),
], _ZH_HEADINGS["payment_terms"])

ZH += [
    Template("none", "zh", "{B}应依照[技术规范|附件所列标准|双方确认的方案]向{A}提供{product}[，并接受{A}的合理监督|]。",
             "这是常规的服务内容条款，无明显风险。", headings=("服务内容", "合作内容")),
    Template("none", "zh", "本合同项下的[通知|一切通知和文件]应以书面形式[通过快递或电子邮件|以专人送达或挂号信|通过特快专递]"
             "送达[对方在本合同首页载明的地址|对方书面指定的地址|{A}或{B}的注册地址][，送达之日视为收到|，寄出后三日视为送达|]。",
             "常规通知条款，通知须书面送达。", headings=("通知", "通知与送达")),
    Template("none", "zh", "本合同[构成|为]双方就[合同标的|本项目|本次合作]达成的完整协议，取代此前的[一切|全部|任何]"
             "[口头或书面约定|谈判、承诺和约定|意向书和备忘录]。",
             "常规完整协议条款，此前约定不再有效。", headings=("完整协议",)),
    Template("none", "zh", "本合同[任何|任一|部分]条款被[认定|确认|宣告]无效[或不可执行|]的，不影响[其他条款|其余条款|"
             "本合同其他部分]的效力[，双方应以有效条款替代|]。",
             "常规可分割条款，无明显风险。", headings=("条款效力", "可分割性")),
    Template("none", "zh", "本合同自[双方签署|双方授权代表签署|{A}和{B}签署|双方法定代表人签署]之日起[生效|成立并生效]"
             "[，一式两份，双方各执一份|，有效期至双方义务履行完毕|]。",
             "常规生效条款，无明显风险。", headings=("合同生效", "其他")),
    Template("none", "zh", "对本合同的任何[修改|修改或补充|变更]，[均须经双方协商一致|须由{A}和{B}协商一致|应经双方同意]"
             "[并以书面形式作出|并签订书面补充协议][，口头变更无效|]。",
             "修改合同须双方书面同意，对双方都有保护。", headings=("合同变更",)),
    Template("none", "zh", "因[地震、火灾、战争|台风、洪水、疫情|政府行为、罢工]等不可抗力导致[不能履行合同|合同无法按期履行|"
             "部分或全部不能履行]的，受影响一方应[及时|在{days_c}内]通知对方[并提供证明|并提供有关证明文件|]。",
             "常规不可抗力条款，须及时通知并提供证明。", headings=("不可抗力",)),
    Template("none", "zh", "本合同[以中文书写|以中英文两种文字书写，以中文为准|使用简体中文]，[一式两份|一式四份|一式六份]，"
             "[各份具有同等效力|双方各执一半，具有同等效力|每份效力相同]。",
             "常规文本份数条款，无明显风险。", headings=("合同文本", "其他")),
    Template("none", "zh", "本合同期限为{term_c}，[届满即终止|期满自然终止|到期后终止]，不自动续期；如需[续签|续约|延长]，"
             "双方应另行[签订书面协议|协商并签订书面协议]。",
             "合同期限{term}，到期即终止，不会自动续期。", near_miss=True, headings=("合同期限",)),
    Template("none", "zh", "[除本合同另有约定外|除法律规定的情形外|未经对方书面同意]，[任何一方|{A}和{B}均|双方均]"
             "[不得|无权]单方解除本合同[，否则应承担违约责任|]。",
             "任何一方都不能单方解除合同，对双方都有保护。", near_miss=True, headings=("合同解除",)),
    Template("none", "zh", "本合同为非独家合作，{A}有权向[其他供应商|第三方|任何其他方]采购{product}。",
             "合作为非独家，{A}仍可向他人采购{product}。", near_miss=True, headings=("合作方式",)),
    Template("none", "zh", "本合同[各条|各条款的]标题仅为[方便阅读|便于查阅|方便引用]而设，不影响[条款的解释|本合同的解释|"
             "各条款的含义][，也不构成合同内容|]。",
             "常规解释条款，无明显风险。", near_miss=True, headings=("标题", "解释")),
    Template("none", "zh", "[双方|{A}和{B}]各自承担因[谈判和签署|洽谈、起草和签署|磋商和订立]本合同而发生的[费用|律师费等费用|"
             "全部费用]。",
             "双方各自负担签约费用，无明显风险。", near_miss=True, headings=("费用承担",)),
    Template("none", "zh", "本合同不限制[任何一方|{A}|{B}]独立[开发或销售|研发、生产或销售|经营]与对方[产品|服务|产品或服务]"
             "相竞争的[产品|业务|产品或服务]。",
             "本条不限制竞争，无明显风险。", near_miss=True, headings=("独立开发",)),
    Template("none", "zh", "[双方均确认|{A}和{B}均声明|各方均保证]其[具有签订和履行本合同的合法资格和能力|已取得签订本合同所需的"
             "全部授权|依法设立并有效存续]。",
             "常规资格声明，无明显风险。", heldout=True, headings=("声明与保证",)),
    Template("none", "zh", "本合同期满后如需[延长|续期|继续合作]，[须经双方另行书面同意|应由{A}和{B}另行签订书面协议|"
             "双方应重新协商并书面确认][，否则本合同到期终止|，未经书面确认的不视为续期|]。",
             "合同延期须双方另行书面同意，不会自动续期。", heldout=True, near_miss=True, headings=("合同期限",)),
]

TEMPLATES: dict[str, list[Template]] = {"en": EN, "zh": ZH}
#: relative weight of each class when drawing a case ("none" holds routine clauses and near-misses)
WEIGHTS = {**{c.id: 1.0 for c in rules.CATEGORIES}, review.NONE: 2.0}
#: the explanation slots that carry values the answer must quote (scored by ``values_quoted``)
VALUE_SLOTS = ("amount", "days", "notice", "months", "years", "term", "renew", "pct", "rate", "interest", "ref",
               "ref_zh")

# -- slot values ---------------------------------------------------------------------------------------------------

_EN_NUM = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 10: "ten", 12: "twelve",
           14: "fourteen", 15: "fifteen", 18: "eighteen", 20: "twenty", 24: "twenty-four", 30: "thirty",
           45: "forty-five", 60: "sixty", 90: "ninety"}
_ZH_DIGITS = "零一二三四五六七八九"
_ZH_CAPITAL = "零壹贰叁肆伍陆柒捌玖"

_EN_ROLES = [("Provider", "Client"), ("Supplier", "Customer"), ("Licensor", "Licensee"), ("Seller", "Buyer"),
             ("Vendor", "Purchaser"), ("Contractor", "Company"), ("Consultant", "Client"),
             ("Distributor", "Manufacturer"), ("Service Provider", "Customer"), ("Party A", "Party B")]
_ZH_ROLES = [("甲方", "乙方")] * 6 + [("买方", "卖方"), ("委托方", "受托方"), ("出租方", "承租方"),
                                     ("许可方", "被许可方"), ("服务方", "客户"), ("供应商", "采购方")]
_EN_CURRENCY = ["USD ", "US$", "$", "EUR ", "€", "GBP ", "£"]
_AMOUNTS = [5, 8, 10, 12, 15, 20, 25, 30, 40, 45, 50, 60, 75, 80, 100, 120, 150, 200, 250, 300, 500, 750, 1000,
            1200, 1500, 2000]
_EN_PRODUCTS = ["analytics services", "cloud hosting services", "packaging materials", "spare parts",
                "software development services", "marketing services", "raw materials", "logistics services",
                "IT support services", "printed circuit boards", "office supplies", "security services",
                "laboratory equipment", "translation services"]
_ZH_PRODUCTS = ["数据分析服务", "包装材料", "软件开发服务", "物流服务", "原材料", "技术服务", "办公用品", "零部件",
                "广告推广服务", "云计算服务", "安保服务", "检测设备"]
_EN_TERRITORY = ["the United States", "North America", "the European Union", "Germany", "Canada",
                 "the United Kingdom", "Asia", "France", "Australia", "the State of Texas", "Japan"]
_ZH_TERRITORY = ["中国境内", "华东地区", "北京市", "长三角地区", "全国范围内", "广东省", "华南地区", "上海市"]
_EN_SCOPE = ["its breach of this Agreement", "its use of the Services", "any infringement by its products",
             "the negligence of its staff", "its violation of applicable law", "any defect in the goods it supplies",
             "its failure to pay taxes"]
_ZH_SCOPE = [("违反本合同", "违约"), ("使用服务", "使用服务"), ("产品侵犯第三方知识产权", "产品侵权"), ("员工的过错", "员工过错"),
             ("违反法律法规", "违法"), ("提供的产品存在质量缺陷", "产品缺陷")]
_EN_SUCCESSOR = ["any affiliate", "a successor to its business", "any third party", "a purchaser of its assets",
                 "any member of its group"]
_ZH_SUCCESSOR = ["其关联公司", "任何第三方", "其控股子公司", "其业务的承继方", "其指定的公司"]
_EN_JURIS = [  # (law in the clause, law adjective, forum in the clause, forum in the explanation)
    ("the State of New York", "New York", "the courts of New York County", "New York courts"),
    ("the State of Delaware", "Delaware", "the state and federal courts in Wilmington, Delaware", "Delaware courts"),
    ("the State of California", "California", "the courts of San Francisco County", "San Francisco courts"),
    ("England and Wales", "English", "the courts of London", "London courts"),
    ("Singapore", "Singapore", "arbitration in Singapore under the SIAC Rules", "SIAC arbitration"),
    ("the Province of Ontario", "Ontario", "the courts of Toronto", "Toronto courts"),
    ("Ireland", "Irish", "the courts of Dublin", "Dublin courts"),
    ("Hong Kong", "Hong Kong", "arbitration at the HKIAC in Hong Kong", "HKIAC arbitration"),
    ("Germany", "German", "the courts of Frankfurt am Main", "Frankfurt courts"),
    ("the State of Texas", "Texas", "the courts of Harris County, Texas", "Harris County courts"),
    ("Switzerland", "Swiss", "ICC arbitration in Geneva", "ICC arbitration in Geneva"),
]
_ZH_LAW = [("中华人民共和国法律", "中国法律"), ("中国法律", "中国法律"), ("中华人民共和国的法律", "中国法律")]
_ZH_COURTS = ["合同签订地人民法院", "北京市朝阳区人民法院", "上海市浦东新区人民法院", "深圳市南山区人民法院",
              "杭州市西湖区人民法院", "广州市天河区人民法院"]
_ZH_ARBITRATION = ["北京仲裁委员会", "上海国际仲裁中心", "中国国际经济贸易仲裁委员会", "深圳国际仲裁院", "广州仲裁委员会"]


def en_number(n: int) -> str:
    return _EN_NUM.get(n, str(n))


def zh_number(n: int) -> str:
    """1..99 in ordinary Chinese numerals: 15 -> 十五, 30 -> 三十."""
    if n < 10:
        return _ZH_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _ZH_DIGITS[tens]) + "十" + (_ZH_DIGITS[ones] if ones else "")


def zh_capital(value: int) -> str:
    """An amount in capital numerals, as written on Chinese contracts: 50000 -> 伍万元整 (value < 10^8)."""
    def group(n: int) -> str:
        s, zero = "", False
        for unit, name in ((1000, "仟"), (100, "佰"), (10, "拾"), (1, "")):
            d = n // unit % 10
            if d:
                s += ("零" if zero else "") + _ZH_CAPITAL[d] + name
                zero = False
            elif s:
                zero = True
        return s

    high, low = divmod(value, 10000)
    s = group(high) + "万" if high else ""
    if low:
        s += ("零" if high and low < 1000 else "") + group(low)
    return (s or "零") + "元整"


def _en_duration(rng: random.Random, n: int, unit: str) -> tuple[str, str]:
    """(clause wording, explanation wording): 'thirty (30) days' / '30 days'."""
    u = unit if n == 1 else unit + "s"
    forms = [f"{n} {u}"]
    if n in _EN_NUM:
        forms += [f"{_EN_NUM[n]} ({n}) {u}", f"{_EN_NUM[n]} ({n}) {u}"]
        if n <= 12:
            forms.append(f"{_EN_NUM[n]} {u}")
    return rng.choice(forms), f"{n} {u}"


def _zh_duration(rng: random.Random, n: int, unit: str) -> tuple[str, str]:
    """('三十日', '30日'), ('两年', '2年'), ('6个月', '6个月')."""
    word = "两" if n == 2 and unit != "日" and rng.random() < 0.6 else zh_number(n)
    written = rng.choice([word + unit, f"{n}{unit}"])
    return written, f"{n}{unit}"


def _case(rng: random.Random, lang: str) -> dict[str, str]:
    """One set of slot values (clause and explanation forms) for a clause."""
    c: dict[str, str] = {}
    if lang == "en":
        a, b = rng.choice(_EN_ROLES)
        c["A"], c["B"] = (a, b) if rng.random() < 0.5 else (b, a)
        v = rng.choice(_AMOUNTS) * 1000
        cur = rng.choice(_EN_CURRENCY)
        c["amount_c"] = c["amount"] = f"{cur}{v:,}" + (".00" if rng.random() < 0.15 else "")
        for slot, pool, unit in (("days", [5, 7, 10, 14, 15, 20, 30, 45, 60, 90], "day"),
                                 ("notice", [10, 14, 15, 30, 45, 60, 90], "day"),
                                 ("months", [1, 3, 6, 12, 18, 24], "month"),
                                 ("years", [1, 2, 3, 5], "year")):
            c[slot + "_c"], c[slot] = _en_duration(rng, rng.choice(pool), unit)
        for slot in ("term", "renew"):
            n, unit = rng.choice([(1, "year"), (2, "year"), (3, "year"), (6, "month"), (12, "month"),
                                  (24, "month")])
            c[slot + "_c"], c[slot] = _en_duration(rng, n, unit)
        p = rng.choice([5, 10, 15, 20, 25, 30, 50, 100])
        c["pct_c"] = rng.choice([f"{p}%", f"{p} percent", f"{p}%"]) if p not in _EN_NUM else rng.choice(
            [f"{p}%", f"{_EN_NUM[p]} percent ({p}%)", f"{p} percent"])
        c["pct"] = f"{p}%"
        r = rng.choice(["0.1%", "0.5%", "1%", "2%"])
        c["rate_c"] = c["rate"] = r
        i = rng.choice(["1% per month", "1.5% per month", "2% per month", "5% per annum", "8% per annum",
                        "10% per year"])
        c["interest_c"] = c["interest"] = i
        law_c, law, forum_c, forum = rng.choice(_EN_JURIS)
        if rng.random() < 0.3:  # a forum outside the governing law's country happens too
            forum_c, forum = rng.choice(_EN_JURIS)[2:]
        c.update(law_c=law_c, law=law, forum_c=forum_c, forum=forum)
        c["territory"] = rng.choice(_EN_TERRITORY)
        c["product"] = rng.choice(_EN_PRODUCTS)
        c["scope"] = rng.choice(_EN_SCOPE)
        c["successor"] = rng.choice(_EN_SUCCESSOR)
        c["ref"] = str(rng.randint(2, 18))
    else:
        a, b = rng.choice(_ZH_ROLES)
        c["A"], c["B"] = (a, b) if rng.random() < 0.5 else (b, a)
        v = rng.choice(_AMOUNTS) * 1000
        forms = [(f"人民币{v:,}元", f"{v:,}元"), (f"人民币{zh_capital(v)}（¥{v:,}.00）", f"¥{v:,}.00"),
                 (f"¥{v:,}", f"¥{v:,}"), (f"{v:,}元", f"{v:,}元")]
        if v % 10000 == 0:
            forms.append((f"人民币{v // 10000}万元", f"{v // 10000}万元"))
        c["amount_c"], c["amount"] = rng.choice(forms)
        for slot, pool, unit in (("days", [5, 7, 10, 15, 20, 30, 45, 60, 90], "日"),
                                 ("notice", [7, 10, 15, 30, 60, 90], "日"),
                                 ("months", [1, 3, 6, 12], "个月"), ("years", [1, 2, 3, 5], "年")):
            u = "天" if unit == "日" and rng.random() < 0.3 else unit
            c[slot + "_c"], c[slot] = _zh_duration(rng, rng.choice(pool), u)
        for slot in ("term", "renew"):
            n, unit = rng.choice([(1, "年"), (2, "年"), (3, "年"), (6, "个月"), (12, "个月")])
            c[slot + "_c"], c[slot] = _zh_duration(rng, n, unit)
        p = rng.choice([5, 10, 15, 20, 30, 50])
        c["pct_c"], c["pct"] = rng.choice([(f"百分之{zh_number(p)}", f"{p}%"), (f"{p}%", f"{p}%")])
        c["rate_c"] = c["rate"] = rng.choice(["千分之五", "千分之三", "万分之五", "千分之一", "0.05%"])
        c["law_c"], c["law"] = rng.choice(_ZH_LAW)
        court = rng.choice(_ZH_COURTS + [f"{c['A']}所在地人民法院", f"{c['B']}住所地人民法院"])
        c["court"] = court
        if rng.random() < 0.5:
            arb = rng.choice(_ZH_ARBITRATION)
            c["forum_c"], c["forum"] = f"提交{arb}仲裁", arb
        else:
            c["forum_c"], c["forum"] = f"向{court}提起诉讼", court
        c["territory"] = rng.choice(_ZH_TERRITORY)
        c["product"] = rng.choice(_ZH_PRODUCTS)
        c["scope_c"], c["scope"] = rng.choice(_ZH_SCOPE)
        c["successor"] = rng.choice(_ZH_SUCCESSOR)
        ref = rng.randint(2, 18)
        c["ref_zh"] = zh_number(ref)
    return c


# -- composing a clause --------------------------------------------------------------------------------------------

_CHOICE = re.compile(r"\[(?:#(\d+) )?([^\[\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")


def _choose(text: str, rng: random.Random, groups: dict[str, int]) -> str:
    def pick(m: re.Match) -> str:
        options = m.group(2).split("|")
        if m.group(1) is None:
            return rng.choice(options)
        key = m.group(1)
        if key not in groups:
            groups[key] = rng.randrange(len(options))
        return options[groups[key] % len(options)]

    return _CHOICE.sub(pick, text)


def _number(rng: random.Random, lang: str) -> str:
    n = rng.randint(1, 24)
    if lang == "zh":
        return rng.choice([f"第{zh_number(n)}条", f"第{zh_number(n)}条", f"{zh_number(n)}、", f"（{zh_number(n)}）",
                           f"{n}.", f"{n}.{rng.randint(1, 6)}"])
    return rng.choice([f"{n}.", f"{n}.", f"{n}.{rng.randint(1, 6)}", f"Section {n}.", f"Article {n}",
                       f"Clause {n}.", f"({'abcdefgh'[n % 8]})", f"{n})"])


def compose(tpl: Template, rng: random.Random) -> dict[str, Any]:
    """One case from a template: the clause as the pipeline sees it, the answer, and the truth."""
    case = _case(rng, tpl.lang)
    groups: dict[str, int] = {}
    body = _choose(tpl.body, rng, groups).format_map(case)
    expl_t = _choose(tpl.expl, rng, groups)
    expl = expl_t.format_map(case)
    values = {s: case[s] for s in _SLOT.findall(expl_t) if s in VALUE_SLOTS}
    headings = tpl.headings or (_ZH_HEADINGS if tpl.lang == "zh" else _EN_HEADINGS).get(tpl.cat, ("",))
    heading = rng.choice(headings) if rng.random() < 0.75 else ""
    if tpl.lang == "zh":
        head = f"{heading}{rng.choice([' ', '：', ' '])}" if heading else ""
    else:
        heading = heading.upper() if heading and rng.random() < 0.1 else heading
        head = f"{heading}. " if heading else ""
    body = body[0].upper() + body[1:]
    clause = normalise(f"{_number(rng, tpl.lang)} {head}{body}")
    return {"clause": clause, "body": body, "explanation": expl[0].upper() + expl[1:], "values": values}


def _templates(lang: str, cat: str, heldout: bool) -> list[Template]:
    return [t for t in TEMPLATES[lang] if t.cat == cat and t.heldout == heldout]


def make_row(tpl: Template, rng: random.Random, row_id: str) -> tuple[dict[str, Any], str]:
    """A fine-tuning row for one case of ``tpl`` and its de-duplication key (the clause body)."""
    made = compose(tpl, rng)
    system, user = review.review_messages(made["clause"])
    risk = review.default_risk(tpl.cat)
    meta = {"category": tpl.cat, "risk": risk, "values": made["values"], "clause": made["clause"],
            "template": f"{tpl.lang}/{tpl.cat}/{TEMPLATES[tpl.lang].index(tpl)}", "heldout_template": tpl.heldout,
            "near_miss": tpl.near_miss, "rule_categories": rules.classify(made["clause"])}
    row = {"id": row_id, "lang": tpl.lang, "system": system, "instruction": user,
           "output": review.format_answer(tpl.cat, made["explanation"]), "meta": meta}
    return row, body_key(made["body"])


def _stream(seed: int, stream: str, langs: tuple[str, ...], heldout_share: float,
            exclude: set[str]) -> Iterator[tuple[dict[str, Any], str]]:
    """Unique ``(row, key)`` pairs (by clause body, also against ``exclude``), languages in turn, classes drawn
    by WEIGHTS."""
    for lang in langs:
        if lang not in TEMPLATES:
            raise ValueError(f"langs: expected 'en' and/or 'zh', got {lang!r}")
    rng = random.Random(f"puyu-legal:{stream}:{seed}")
    classes, weights = list(WEIGHTS), list(WEIGHTS.values())
    seen = set(exclude)
    i = 0
    while True:
        lang = langs[i % len(langs)]
        cat = rng.choices(classes, weights)[0]
        for _ in range(500):
            held = _templates(lang, cat, True)
            pool = held if held and rng.random() < heldout_share else _templates(lang, cat, False)
            row, key = make_row(rng.choice(pool), rng, f"legal-{stream}-{seed}-{i:05d}")
            if key not in seen:
                seen.add(key)
                break
        else:
            raise RuntimeError(f"could not draw a new unique {lang} {cat} clause after 500 tries ({stream}, "
                               f"seed {seed}): the templates are exhausted; ask for fewer examples")
        i += 1
        yield row, key


def make_examples(n: int, seed: int, langs: tuple[str, ...] = ("en", "zh"), *, stream: str = "train",
                  heldout_share: float = 0.0, exclude: set[str] | None = None) -> list[dict[str, Any]]:
    """``n`` rows in the fine-tuning JSONL schema, deterministic for ``(seed, stream)``; languages alternate.

    ``heldout_share`` is the share of rows drawn from the held-out paraphrases (0 for training data);
    ``exclude`` holds clause-body keys (:func:`body_key`) never to produce."""
    gen = _stream(seed, stream, tuple(langs), heldout_share, exclude or set())
    return [next(gen)[0] for _ in range(n)]


def body_key(body: str) -> str:
    """What 'the same clause' means for de-duplication: the body (no numbering, no heading), lower-cased."""
    return " ".join(body.lower().split())


def write_splits(out_dir: str | Path, n_train: int = 3000, n_eval: int = 200, seed: int = 0) -> tuple[Path, Path]:
    """``train.jsonl`` and ``eval.jsonl`` under ``out_dir``: about half English, half Chinese. The held-out set
    comes from its own seed stream, half of it from paraphrases never used for training, and none of its clause
    bodies occurs in the training set."""
    from ..finetune.data import write_jsonl

    gen = _stream(seed, "train", ("en", "zh"), 0.0, set())
    pairs = [next(gen) for _ in range(n_train)]
    train = [row for row, _ in pairs]
    held = make_examples(n_eval, seed, stream="eval", heldout_share=0.5, exclude={key for _, key in pairs})
    out = Path(out_dir)
    train_path, eval_path = out / "train.jsonl", out / "eval.jsonl"
    write_jsonl(train_path, train)
    write_jsonl(eval_path, held)
    return train_path, eval_path
