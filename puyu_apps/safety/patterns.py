"""Tier 1: the keyword / pattern list, by category. Patterns are matched against the normalised, the compact
(spaces and punctuation removed) and the de-leeted forms of the text (see :mod:`.normalize`), so they are written
without spaces."""

from __future__ import annotations

PATTERNS: dict[str, list[str]] = {
    "weapons": [
        r"(make|build|assemble|construct|制作|制造|自制|组装|做|造)(an?|the|一个|一枚|个)?.{0,10}"
        r"(pipebomb|bomb|explosive|ied|炸弹|炸药|爆炸物|雷管|燃烧瓶)",
        r"(bomb|explosive|炸弹|炸药|爆炸物).{0,8}(recipe|tutorial|instructions|配方|教程|做法|制作方法)",
        r"(3dprint|printa|制造|自制|组装).{0,6}(gun|firearm|枪支|手枪|步枪)",
    ],
    "drugs": [
        r"(make|cook|synthesi[sz]e|produce|制作|制造|合成|提炼|提纯|熬制).{0,10}"
        r"(meth|methamphetamine|heroin|cocaine|fentanyl|lsd|冰毒|海洛因|可卡因|摇头丸|芬太尼|k粉)",
        r"(buy|sell|get|购买|买到|贩卖|出售).{0,6}(meth|heroin|cocaine|冰毒|海洛因|毒品|可卡因)",
    ],
    "self_harm": [
        r"(howto|howdoi|howcani|waysto|bestwayto|怎么|如何|怎样|教我).{0,10}"
        r"(suicide|killmyself|endmylife|自杀|割腕|结束自己的生命|结束生命)",
        r"(suicide|自杀).{0,6}(method|methods|方法|教程|最快|无痛)",
    ],
    "violence": [
        r"(kill|murder|poison|stab|杀死|杀掉|杀害|毒死|弄死|捅死).{0,6}(someone|aperson|people|myboss|mywife|"
        r"myhusband|myneighbou?r|him|her|them|他|她|人|老板|妻子|丈夫|老婆|老公|邻居|同事)",
    ],
    "fraud": [
        r"(steal|盗取|窃取|盗刷|偷取|骗取).{0,8}(bankcard|creditcard|password|account|银行卡|信用卡|密码|账号|账户)",
        r"(phishingsite|phishingpage|phishingemail|钓鱼网站|钓鱼邮件)",
        r"(怎么|如何|教我|帮我)(洗钱|把.{0,6}洗白)|(howto|howcani|helpme)launder",
        r"(forge|fake|伪造|假造|仿造).{0,6}(idcard|passport|invoice|prescription|signature|身份证|证件|发票|病历|"
        r"处方|合同|公章|签名)",
    ],
    "prompt_injection": [
        r"(ignore|disregard|forget).{0,12}(previous|prior|above|earlier|all|your).{0,12}(instructions|rules|prompt)",
        r"(忽略|无视|忘记|忘掉).{0,8}(之前|以上|上面|前面|所有|你的).{0,8}(指令|指示|规则|提示|设定)",
        r"(reveal|print|show|leak|输出|显示|告诉我|泄露).{0,8}(systemprompt|系统提示词|系统提示)",
    ],
    "hate": [
        r"(all|所有).{0,4}(blacks|muslims|jews|黑人|穆斯林|犹太人|少数民族).{0,8}(shoulddie|mustdie|都该死|去死|该被消灭)",
    ],
    "sexual_minors": [
        r"(child|kid|minor|underage|儿童|未成年|幼女|幼童).{0,6}(porn|sex|nude|色情|裸照|性交)",
    ],
}
