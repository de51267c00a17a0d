"""Chest CT -> nodules -> Lung-RADS report in ten lines. ``python examples/medical_api.py [SERIES [MODEL]]``"""
import sys

import puyu_apps
from puyu_apps.medical.phantom import make_sample

series = sys.argv[1] if len(sys.argv) > 1 else make_sample("medical_sample")[0][0].parent  # synthetic CT, 3 nodules
model = sys.argv[2] if len(sys.argv) > 2 else "smollm2-135m-instruct"  # the embedded default model
with puyu_apps.pipeline("medical", model=model) as ct:
    report = ct(str(series), history="61-year-old former smoker, 40 pack-years")  # names are scrubbed first
print(report.to_text())  # findings, impression, measurements, Lung-RADS v2022 category and management
open("report.html", "w", encoding="utf-8").write(report.to_html())  # with the key slices and nodule contours
