"""``MedicalReportPipeline``: DICOM CT -> HU volume (MONAI preprocessing) -> UNet nodules -> measurements ->
Lung-RADS v2022 -> retrieved finding phrases -> LLM findings + impression, checked against the measurements.

Patient identifiers never reach the result, the logs or the LLM prompt unless ``keep_identifiers=True``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..paths import vertical_dir
from ..pipelines.base import Pipeline
from .report import _UNSUPPORTED as _UNSUPPORTED_RE
from .result import MedicalReportResult

MIN_SLICES = 10  # fewer slices: no volumetric nodule assessment (Lung-RADS 0)


class MedicalReportPipeline(Pipeline):
    name = "medical"
    description = "Chest CT (DICOM) -> nodule segmentation (MONAI UNet) -> measurements -> Lung-RADS report"
    result_type = MedicalReportResult

    def __init__(self, *, language: str = "en", keep_identifiers: bool = False, segmenter_weights: str | None = None,
                 encoder_weights: str | None = None, use_features: bool = True, max_new_tokens: int = 160,
                 key_images: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if language not in ("en", "zh"):
            raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
        if max_new_tokens < 16:
            raise ValueError(f"max_new_tokens must be >= 16, got {max_new_tokens}")
        self.language, self.keep_identifiers = language, keep_identifiers
        self.segmenter_weights, self.encoder_weights = segmenter_weights, encoder_weights
        self.use_features, self.max_new_tokens, self.key_images = use_features, max_new_tokens, key_images
        self._segmenter: Any = None
        self._retriever: Any = None

    def init_parameters(self) -> dict[str, Any]:
        return {**super().init_parameters(), "language": self.language, "keep_identifiers": self.keep_identifiers,
                "segmenter_weights": self.segmenter_weights, "encoder_weights": self.encoder_weights,
                "use_features": self.use_features, "max_new_tokens": self.max_new_tokens,
                "key_images": self.key_images}

    def load_components(self) -> None:
        from .segment import NoduleSegmenter

        self._segmenter = NoduleSegmenter(self.segmenter_weights, device=self.device)
        if self.use_features:
            from .features import load_retriever

            self._retriever = load_retriever(self.encoder_weights)

    # -- stages -------------------------------------------------------------------------------------------
    def preprocess(self, inputs: Any, *, history: str = "", language: str | None = None,
                   keep_identifiers: bool | None = None, series_uid: str | None = None,
                   **params: Any) -> dict[str, Any]:
        from .deid import scrub
        from .dicom_io import load_ct

        if params:
            raise TypeError(f"unknown medical parameter(s): {', '.join(sorted(params))}; accepted: history, "
                            f"language, keep_identifiers, series_uid")
        lang = language or self.language
        if lang not in ("en", "zh"):
            raise ValueError(f"language must be 'en' or 'zh', got {lang!r}")
        keep = self.keep_identifiers if keep_identifiers is None else keep_identifiers
        t = time.perf_counter()
        self.progress("load", "reading DICOM", 0.0)
        vol = load_ct(inputs, series_uid=series_uid)
        history = history if keep else scrub(history, vol.identifiers)
        return {"volume": vol, "history": history.strip(), "language": lang, "keep": keep,
                "t_load": time.perf_counter() - t}

    def _forward(self, prepared: dict[str, Any]) -> dict[str, Any]:
        from .lungrads import MANAGEMENT, nodule_category, study_category
        from .measure import lung_mask, lung_volume_ml, measure
        from .report import build_messages

        vol = prepared["volume"]
        timings = {"load": prepared["t_load"]}
        warnings = list(vol.warnings)
        evaluable = vol.shape[0] >= MIN_SLICES
        found: list[Any] = []
        t = time.perf_counter()
        lung = lung_mask(vol.hu)
        if evaluable:
            self.progress("segment", f"UNet on {vol.shape[0]} slices", 0.1)
            prob = self._segmenter.predict(vol)
            timings["segment"] = time.perf_counter() - t
            t = time.perf_counter()
            self.progress("measure", "measuring nodules", 0.5)
            found = measure(vol, prob, lung)
        else:
            warnings.append(f"only {vol.shape[0]} slice(s): volumetric nodule findings need a complete CT series "
                            f"(at least {MIN_SLICES} contiguous slices); no nodule assessment was made "
                            f"(Lung-RADS 0)")
        nodules = []
        for i, f in enumerate(found, 1):
            info = dict(f.info, index=i)
            info["category"] = nodule_category(info["type"], info["mean_diameter_mm"], info["solid_diameter_mm"])
            nodules.append(info)
        category = study_category([n["category"] for n in nodules], evaluable)
        lung_ml = lung_volume_ml(vol, lung) if evaluable and lung.any() else None
        timings["measure"] = time.perf_counter() - t
        t = time.perf_counter()
        retrieved: list[str] = []
        if self._retriever is not None and found:
            self.progress("features", "image-text encoder", 0.6)
            retrieved = self._retriever.retrieve(vol, found, prepared["language"])
        timings["features"] = time.perf_counter() - t
        t = time.perf_counter()
        self.progress("report", "writing the report", 0.7)
        system, user = build_messages(vertical_dir(self.name) / "prompts", prepared["language"], prepared["history"],
                                      nodules, lung_ml, category, evaluable, retrieved)
        gen = self.lm.generate(user, adapter=self._adapter_name, system=system, max_new_tokens=self.max_new_tokens,
                               temperature=0.0, repetition_penalty=1.1)
        timings["report"] = time.perf_counter() - t
        return {"volume": vol, "found": found, "nodules": nodules, "category": category, "lung_ml": lung_ml,
                "management": MANAGEMENT[category], "evaluable": evaluable, "llm": gen.text, "retrieved": retrieved,
                "history": prepared["history"], "language": prepared["language"], "keep": prepared["keep"],
                "warnings": warnings, "timings": timings}

    def postprocess(self, outputs: dict[str, Any]) -> MedicalReportResult:
        import numpy as np

        from .deid import scrub
        from .render import b64, key_slice_png
        from .report import check_report, measurements_text, parse_sections
        from .result import KeyImage, NoduleFinding

        vol, lang = outputs["volume"], outputs["language"]
        t = time.perf_counter()
        llm = outputs["llm"] if outputs["keep"] else scrub(outputs["llm"], vol.identifiers)
        from .report import default_impression, filter_findings, nodule_sentence

        findings, impression = parse_sections(llm)
        nodules, cat, evaluable = outputs["nodules"], outputs["category"], outputs["evaluable"]
        flags = []
        findings, dropped = filter_findings(findings, nodules)
        if dropped:
            flags.append(f"{dropped} sentence(s) of the model's findings contradicted or went beyond the "
                         f"measurements (size, lobe, diagnosis or treatment claims) and were removed")
        missing = [(i, n) for i, n in enumerate(nodules, 1)
                   if f"{n['mean_diameter_mm']:.1f}" not in findings and f"{n['mean_diameter_mm']:.0f} mm"
                   not in findings]
        if not findings.strip():
            findings = measurements_text(nodules, outputs["lung_ml"], evaluable, lang)
            flags.append("no usable findings in the model's text: the measured findings were written in")
        elif missing:
            findings += "\n" + "\n".join(f"- {nodule_sentence(i, n, lang)}" for i, n in missing)
            flags.append(f"the model's findings omitted {len(missing)} measured nodule(s): added")
        if not impression.strip() or _UNSUPPORTED_RE.search(impression):
            if impression.strip():
                flags.append("the model's impression made claims the measurements do not support: replaced")
            else:
                flags.append("the model wrote no impression: the computed impression was used")
            impression = default_impression(nodules, cat, evaluable, lang)
        findings, impression, more, check = check_report(findings, impression, nodules, cat, evaluable)
        flags += more
        images = []
        if self.key_images:
            aspect = vol.spacing[1] / vol.spacing[0]
            for i, f in enumerate(outputs["found"], 1):
                k = f.info["key_slice"]
                mask2d = np.zeros(vol.shape[1:], bool)
                mask2d[f.box[1], f.box[2]] = f.mask[k - f.box[0].start]
                images.append(KeyImage(nodule=i, slice=k, png_base64=b64(key_slice_png(vol.hu[k], mask2d, aspect))))
        study = {"modality": vol.modality, "slices": vol.shape[0], "shape": list(vol.shape),
                 "spacing_mm": [round(float(s), 3) for s in vol.spacing], **vol.meta}
        if outputs["keep"]:
            study["series_uid"] = vol.series_uid
        timings = dict(outputs["timings"], render=time.perf_counter() - t)
        return MedicalReportResult(
            language=lang, evaluable=outputs["evaluable"], study=study,
            patient=dict(vol.identifiers) if outputs["keep"] else {}, history=outputs["history"],
            lung_volume_ml=outputs["lung_ml"], nodules=[NoduleFinding(**n) for n in outputs["nodules"]],
            lung_rads=outputs["category"], management=outputs["management"], findings=findings,
            impression=impression, llm_text=llm, category_check=check, flags=flags,
            retrieved_phrases=outputs["retrieved"], key_images=images, warnings=outputs["warnings"],
            timings_s={k: round(v, 3) for k, v in timings.items()})

    # -- CLI ----------------------------------------------------------------------------------------------
    @classmethod
    def add_cli_commands(cls, subparsers: Any) -> None:
        from .cli import add_commands

        add_commands(subparsers)


def default_sample_dir() -> Path:
    from ..paths import cache_dir

    return cache_dir() / "medical" / "sample"
