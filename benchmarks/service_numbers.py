"""Made-up numbers in the service's replies: text tickets the adapter was not trained on (new phrasings, requests
the FAQ does not cover, English and Chinese) through the real pipeline (embedded model + shipped adapter, llama.cpp,
greedy), with the number check on (``CustomerServicePipeline(check_numbers=True)``, the default).

Prints, per ticket whose reply stated a number its prompt did not hold, the sentences the check dropped and the
reply the caller got, then how many replies stated such a number and how many stated a number at all.

    .venv/bin/python benchmarks/service_numbers.py [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from puyu_apps.service import CustomerServicePipeline
from puyu_apps.service.grounding import numbers_in

TICKETS = [
    "How do I change my delivery address?", "Your driver was rude to me.", "I was charged twice for my order.",
    "Can I get a discount on my next order?", "My order number is 55821, where is it?",
    "How much is shipping to Canada?", "I want to return a sweater I bought last month.",
    "When will my refund arrive?", "Do you have a phone number I can call?", "Can I pay in installments?",
    "The item I received is the wrong size.", "What time do you close on Saturday?",
    "I never got the confirmation email.", "My coupon code does not work.",
    "How long is the warranty on headphones?", "Can I change the colour of my order after paying?",
    "The package says delivered but I have nothing.", "How many items can I order at once?",
    "Is there a fee for cancelling?", "我的订单还没到，已经十天了。", "退货运费谁出？", "你们的客服电话是多少？",
    "我被扣了两次钱。", "优惠券怎么用？",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="registered name or folder (default: the embedded model)")
    args = ap.parse_args()
    db = Path(tempfile.mkdtemp(prefix="service-numbers-")) / "tickets.db"
    kw = {"model": args.model} if args.model else {}
    pipe = CustomerServicePipeline(tts=None, db_url=f"sqlite:///{db}", **kw)
    made_up = with_numbers = 0
    for ticket in TICKETS:
        res = pipe(ticket)
        if res.dropped_sentences or numbers_in(res.reply):
            with_numbers += 1
        if res.dropped_sentences:
            made_up += 1
            print(f"{ticket!r}\n  dropped: {res.dropped_sentences}\n  caller got: {res.reply!r}")
    print(f"\n{made_up} of {len(TICKETS)} replies stated a number their prompt did not hold (dropped by the "
          f"check); {with_numbers} stated a number at all; backend {pipe.lm.info().backend}, adapter "
          f"{'loaded' if pipe.lm.adapters.names else 'none'}")
    pipe.close()


if __name__ == "__main__":
    main()
