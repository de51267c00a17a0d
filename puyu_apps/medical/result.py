"""Typed result of the medical pipeline: JSON, plain text and an HTML report with the key slices."""

from __future__ import annotations

import html
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..pipelines.result import PipelineResult
from .lungrads import MANAGEMENT


class NoduleFinding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    type: Literal["solid", "part-solid", "ground-glass"]
    mean_diameter_mm: float
    long_axis_mm: float
    short_axis_mm: float
    solid_diameter_mm: float
    volume_mm3: float
    mean_hu: float
    solid_fraction: float
    slices: list[int]  # first and last slice (1-based, sorted along the slice normal)
    key_slice: int  # 0-based index of the axial slice of largest area
    side: Literal["right", "left"]
    lobe: str
    centre_lps_mm: list[float]
    max_probability: float
    category: str  # Lung-RADS v2022 of this nodule


class KeyImage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodule: int
    slice: int
    png_base64: str


class MedicalReportResult(PipelineResult):
    vertical: str = "medical"
    language: Literal["en", "zh"] = "en"
    evaluable: bool = True
    study: dict = {}
    patient: dict[str, str] = {}  # filled only with keep_identifiers=True
    history: str = ""
    lung_volume_ml: float | None = None
    nodules: list[NoduleFinding] = []
    lung_rads: str = "1"
    management: str = ""
    findings: str = ""
    impression: str = ""
    llm_text: str = ""  # what the model wrote, before the check
    category_check: dict = {}
    flags: list[str] = []
    retrieved_phrases: list[str] = []
    key_images: list[KeyImage] = []

    def to_text(self) -> str:
        zh = self.language == "zh"
        lines = ["胸部CT报告（自动生成，需医生复核）" if zh else "CHEST CT REPORT (automatically generated; "
                 "to be reviewed by a radiologist)"]
        if self.patient:
            lines.append(("患者: " if zh else "Patient: ") + ", ".join(f"{k}={v}" for k, v in self.patient.items()))
        if self.history:
            lines.append(("病史: " if zh else "History: ") + self.history)
        s = self.study
        if s:
            lines.append(("检查: " if zh else "Study: ") + f"{s.get('modality', 'CT')}, {s.get('slices')} slices, "
                         f"spacing {s.get('spacing_mm')} mm")
        lines += ["", "所见:" if zh else "FINDINGS:", self.findings or "-", "", "印象:" if zh else "IMPRESSION:",
                  self.impression or "-", "",
                  ("测量:" if zh else "MEASUREMENTS:")]
        for n in self.nodules:
            solid = f" (solid {n.solid_diameter_mm:.1f} mm)" if n.type == "part-solid" else ""
            lines.append(f"  {n.index}. {n.type} {n.mean_diameter_mm:.1f} mm{solid}, {n.volume_mm3:.0f} mm3, "
                         f"{n.mean_hu:.0f} HU, {n.lobe}, slices {n.slices[0]}-{n.slices[1]}, Lung-RADS {n.category}")
        if not self.nodules:
            lines.append("  (none)" if self.evaluable else "  (not evaluable: a CT series is needed)")
        if self.lung_volume_ml is not None:
            lines.append(f"  lung volume {self.lung_volume_ml:.0f} mL")
        lines.append(f"Lung-RADS v2022: {self.lung_rads}. {self.management or MANAGEMENT.get(self.lung_rads, '')}")
        for f in self.flags:
            lines.append(f"[check] {f}")
        for w in self.warnings:
            lines.append(f"[warning] {w}")
        return "\n".join(lines)

    def to_html(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{n.index}</td><td>{e(n.type)}</td><td>{n.mean_diameter_mm:.1f}</td>"
            f"<td>{n.solid_diameter_mm:.1f}</td><td>{n.volume_mm3:.0f}</td><td>{n.mean_hu:.0f}</td>"
            f"<td>{e(n.lobe)}</td><td>{n.slices[0]}-{n.slices[1]}</td><td>{e(n.category)}</td></tr>"
            for n in self.nodules)
        imgs = "".join(
            f"<figure><img alt='nodule {k.nodule}, slice {k.slice + 1}' src='data:image/png;base64,{k.png_base64}'>"
            f"<figcaption>Nodule {k.nodule}, slice {k.slice + 1}</figcaption></figure>" for k in self.key_images)
        flags = "".join(f"<li>{e(f)}</li>" for f in self.flags + self.warnings)
        patient = (f"<p><b>Patient:</b> {e(', '.join(f'{k}={v}' for k, v in self.patient.items()))}</p>"
                   if self.patient else "")
        return f"""<!doctype html><html lang="{self.language}"><head><meta charset="utf-8">
<title>Chest CT report</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:2px 6px}}figure{{display:inline-block}}
.cat{{font-size:1.4em;font-weight:bold}}</style></head><body>
<h1>Chest CT report</h1><p><i>Automatically generated; to be reviewed by a radiologist.</i></p>{patient}
<p><b>History:</b> {e(self.history or '-')}</p>
<h2>Findings</h2><p>{e(self.findings or '-').replace(chr(10), '<br>')}</p>
<h2>Impression</h2><p>{e(self.impression or '-').replace(chr(10), '<br>')}</p>
<p class="cat">Lung-RADS v2022: {e(self.lung_rads)}</p><p>{e(self.management)}</p>
<h2>Measurements</h2><table><tr><th>#</th><th>type</th><th>mean diameter mm</th><th>solid part mm</th>
<th>volume mm&sup3;</th><th>mean HU</th><th>location</th><th>slices</th><th>Lung-RADS</th></tr>{rows}</table>
<p>Lung volume (scanned range): {self.lung_volume_ml if self.lung_volume_ml is not None else '-'} mL</p>
<h2>Key slices</h2>{imgs or '<p>none</p>'}
<h2>Checks</h2><ul>{flags or '<li>the text agrees with the measurements</li>'}</ul>
</body></html>"""
