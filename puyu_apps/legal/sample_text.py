"""Text of the generated sample contracts (fictitious companies), with the risk each clause plants.

Each clause is ``(category or None, heading, body)``; ``{fee_words}`` / ``{fee}`` are filled in so a variant can
plant amounts whose words and figures disagree.
"""

from __future__ import annotations

EN_TITLE = "SERVICES AGREEMENT"
EN_PREAMBLE = ('This Services Agreement (the "Agreement") is made on {date} (the "Effective Date") between '
               'Northwind Analytics Ltd., a company registered in England ("Provider"), and Bluebird Retail Inc., '
               'a Delaware corporation ("Client").')
EN_CLAUSES: list[tuple[str | None, str, str]] = [
    (None, "Services", "Provider shall deliver the data analytics services described in Schedule A with "
                       "reasonable skill and care."),
    ("auto_renewal", "Term and Renewal", "This Agreement has an initial term of twelve (12) months and shall "
     "automatically renew for successive one-year periods unless either party gives written notice of "
     "non-renewal at least ninety (90) days before the end of the then-current term."),
    ("payment_terms", "Fees and Payment", "Client shall pay Provider a fee of USD {fee} ({fee_words}) per year. "
     "Invoices are payable within fifteen (15) days and late payments bear interest of 1.5% per month."),
    ("confidentiality", "Confidentiality", "Each party shall keep confidential all Confidential Information "
     "of the other party and shall not disclose it to any third party for five (5) years."),
    ("limitation_of_liability", "Limitation of Liability", "In no event shall Provider's aggregate liability "
     "exceed the fees paid by Client in the three (3) months preceding the claim, and Provider shall not be "
     "liable for any indirect or consequential damages."),
    ("indemnification", "Indemnification", "Client shall indemnify, defend and hold harmless Provider from any "
     "claims, losses and expenses arising out of Client's use of the services."),
    ("termination_for_convenience", "Termination", "Provider may terminate this Agreement for convenience at "
     "any time upon ten (10) days' written notice without liability to Client."),
    ("non_compete", "Non-Competition", "During the term and for two (2) years thereafter, Client shall not "
     "engage in or invest in any business that competes with Provider."),
    ("exclusivity", "Exclusivity", "Client shall purchase analytics services exclusively from Provider and "
     "shall not engage any other supplier for such services."),
    ("penalty", "Liquidated Damages", "If Client breaches Clause 8, Client shall pay Provider liquidated "
     "damages of USD 20,000 (Twenty Thousand US Dollars)."),
    ("assignment", "Assignment", "Provider may assign or transfer this Agreement to any affiliate or "
     "successor without the consent of Client."),
    ("governing_law", "Governing Law", "This Agreement shall be governed by the laws of the State of New "
     "York, and the parties submit to the exclusive jurisdiction of the courts of New York County."),
]
EN_PARTIES = [("Provider", "Northwind Analytics Ltd."), ("Client", "Bluebird Retail Inc.")]

ZH_TITLE = "技术服务合同"
ZH_PREAMBLE_LINES = ["甲方：北京星河数据科技有限公司", "乙方：上海蓝鸟商贸有限公司", "签订日期：{date}"]
ZH_CLAUSES: list[tuple[str | None, str, str]] = [
    (None, "服务内容", "乙方按照附件一的要求向甲方提供数据分析服务，并保证服务质量。"),
    ("auto_renewal", "合同期限", "本合同有效期为一年，期满后自动续期一年，除非任何一方在期满前三十日书面通知"
     "对方不再续约。"),
    ("payment_terms", "付款方式", "甲方应于收到发票后十五日内向乙方支付服务费人民币{fee_words}（¥{fee}）。"
     "逾期付款的，每日按应付金额的千分之五支付滞纳金。"),
    ("confidentiality", "保密条款", "双方应对在履行本合同过程中知悉的对方商业秘密承担保密义务，保密期限为五年。"),
    ("limitation_of_liability", "责任限制", "乙方在本合同项下的赔偿责任总额不超过甲方已支付服务费的百分之"
     "二十，且乙方不承担任何间接损失。"),
    ("indemnification", "赔偿", "甲方应赔偿乙方因甲方使用服务而遭受的一切损失，并使乙方免受第三方索赔。"),
    ("penalty", "违约责任", "任何一方违约的，应向守约方支付违约金人民币贰万元整（¥20,000.00）。"),
    ("termination_for_convenience", "合同解除", "乙方可随时提前十日书面通知甲方单方解除本合同，且无需承担"
     "任何责任。"),
    ("non_compete", "竞业限制", "在本合同有效期内及终止后二年内，甲方不得从事与乙方相竞争的业务。"),
    ("exclusivity", "独家合作", "甲方同意乙方为其独家服务供应商，不得委托任何第三方提供同类服务。"),
    ("assignment", "权利转让", "乙方可将本合同项下的权利义务转让给其关联公司，无需经甲方同意。"),
    ("governing_law", "争议解决", "本合同适用中华人民共和国法律。因本合同引起的争议，提交乙方所在地人民法院"
     "诉讼解决。"),
]
ZH_PARTIES = [("甲方", "北京星河数据科技有限公司"), ("乙方", "上海蓝鸟商贸有限公司")]
ZH_NUMERALS = "一二三四五六七八九十"


def zh_clause_number(i: int) -> str:
    """1 -> 第一条, 12 -> 第十二条."""
    if i <= 10:
        return f"第{ZH_NUMERALS[i - 1]}条"
    if i < 20:
        return f"第十{ZH_NUMERALS[i - 11]}条"
    tens, ones = divmod(i, 10)
    return f"第{ZH_NUMERALS[tens - 1]}十{ZH_NUMERALS[ones - 1] if ones else ''}条"
