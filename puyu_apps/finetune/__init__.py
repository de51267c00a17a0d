"""LoRA fine-tuning toolkit: ``finetune(base_model, train.jsonl, out_dir, FinetuneConfig(...))``."""

from .config import DPConfig, FinetuneConfig
from .data import DataFormatError, Example, load_jsonl, write_jsonl
from .trainer import FinetuneReport, finetune

__all__ = ["DPConfig", "DataFormatError", "Example", "FinetuneConfig", "FinetuneReport", "finetune",
           "load_jsonl", "write_jsonl"]
