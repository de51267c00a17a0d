"""``MedicalReportPipeline``: DICOM CT -> HU volume (MONAI preprocessing) -> UNet nodules -> measurements ->
Lung-RADS v2022 -> retrieved finding phrases -> LLM findings + impression, checked against the measurements.

Patient identifiers never reach the result, the logs or the LLM prompt unless ``keep_identifiers=True``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..pipelines.base import Pipeline
from .result import MedicalReportResult

MIN_SLICES = 10  # fewer slices: no volumetric nodule assessment (Lung-RADS 0)


def _eval_scorer(example: Any, text: str) -> dict[str, Any]:
    """Task scores of one generated report (``puyu eval --vertical medical``): see ``training_data.score``."""
    from .training_data import score

    return score(example, text)


class MedicalReportPipeline(Pipeline):
    name = "medical"
    description = "Chest CT (DICOM) -> nodule segmentation (MONAI UNet) -> measurements -> Lung-RADS report"
    result_type = MedicalReportResult

    def __init__(self, *, language: str = "en", keep_identifiers: bool = False, segmenter_weights: str | None = None,
                 encoder_weights: str | None = None, use_features: bool = True, max_new_tokens: int = 200,
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
        hits: list[dict] = []
        if self._retriever is not None and found:
            from .features import phrase_text

            self.progress("features", "image-text encoder", 0.6)
            hits = self._retriever.hits(vol, found)
            retrieved = [phrase_text(h, prepared["language"]) for h in hits]
        timings["features"] = time.perf_counter() - t
        t = time.perf_counter()
        self.progress("report", "writing the report", 0.7)
        system, user = self.messages(nodules, evaluable, prepared["history"], prepared["language"], hits)
        # the adapter writes a formulaic report (the same sizes and words per nodule): a repetition penalty
        # would push it off the measured numbers, so it applies to the base model only
        gen = self.lm.generate(user, adapter=self._adapter_name, system=system, max_new_tokens=self.max_new_tokens,
                               temperature=0.0, repetition_penalty=1.0 if self._adapter_name else 1.1)
        timings["report"] = time.perf_counter() - t
        return {"volume": vol, "found": found, "nodules": nodules, "category": category, "lung_ml": lung_ml,
                "management": MANAGEMENT[category], "evaluable": evaluable, "llm": gen.text, "retrieved": retrieved,
                "history": prepared["history"], "language": prepared["language"], "keep": prepared["keep"],
                "warnings": warnings, "timings": timings}

    def postprocess(self, outputs: dict[str, Any]) -> MedicalReportResult:
        import numpy as np

        from .deid import scrub
        from .render import b64, key_slice_png
        from .report import review_report
        from .result import KeyImage, NoduleFinding

        vol, lang = outputs["volume"], outputs["language"]
        t = time.perf_counter()
        llm = outputs["llm"] if outputs["keep"] else scrub(outputs["llm"], vol.identifiers)
        nodules, cat, evaluable = outputs["nodules"], outputs["category"], outputs["evaluable"]
        review = review_report(llm, nodules, cat, evaluable, outputs["lung_ml"], lang)
        findings, impression, flags, check = review.findings, review.impression, review.flags, review.check
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

    # -- prompt and fine-tuning ----------------------------------------------------------------------------
    @staticmethod
    def messages(nodules: list[dict], evaluable: bool = True, history: str = "", language: str = "en",
                 retrieved: list | None = None) -> tuple[str, str]:
        """(system, user) the LLM gets for these measurements: :func:`report.report_messages`, the same function
        the adapter's training data (``training_data.py``) is generated with."""
        from .report import report_messages

        return report_messages(nodules, evaluable, history, language, retrieved)

    @classmethod
    def make_training_data(cls, out_dir: str | Path, n_train: int = 3000, n_eval: int = 200,
                           seed: int = 0) -> tuple[Path, Path]:
        """``train.jsonl`` / held-out ``eval.jsonl`` of structured cases -> ideal report (English and Chinese)."""
        from .training_data import write_splits

        return write_splits(out_dir, n_train=n_train, n_eval=n_eval, seed=seed)

    eval_scorer = staticmethod(_eval_scorer)

    # -- CLI ----------------------------------------------------------------------------------------------
    @classmethod
    def add_cli_commands(cls, subparsers: Any) -> None:
        from .cli import add_commands

        add_commands(subparsers)


def default_sample_dir() -> Path:
    from ..paths import cache_dir

    return cache_dir() / "medical" / "sample"
