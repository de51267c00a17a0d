"""One customer-service call turn in ten lines. ``python examples/service_api.py [CALL.wav [MODEL]]``"""
import sys

import puyu_apps
from puyu_apps.service.cli import make_samples

call = sys.argv[1] if len(sys.argv) > 1 else make_samples("service_samples")[0]["path"]  # spoken by espeak-ng
model = sys.argv[2] if len(sys.argv) > 2 else "smollm2-135m-instruct"  # the embedded default model
with puyu_apps.pipeline("service", model=model, db_url="sqlite:///tickets.db") as agent:  # tickets go to SQLite
    turn = agent(call)  # ASR -> sentiment + intent -> FAQ-grounded reply -> speech
print(turn.to_text())  # transcript, sentiment, intent, escalation, reply
turn.save("reply.wav")  # the spoken reply, 16 kHz mono
