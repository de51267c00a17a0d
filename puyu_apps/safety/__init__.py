"""Safety: a three-tier content filter (patterns, classifier, output post-check) and PII desensitisation.

    from puyu_apps.safety import ContentFilter, mask_pii
    verdict = ContentFilter.for_vertical("medical").check_input(text)
"""

from .filter import REFUSAL, ContentFilter, SafetyPolicy, Verdict, repetition_rate
from .logging_filter import PIIMaskingFilter, install_log_masking, uninstall_log_masking
from .normalize import compact, normalize
from .pii import KINDS, PIIFinding, find_pii, luhn_ok, mask_pii, valid_cn_id

__all__ = [
    "KINDS", "REFUSAL", "ContentFilter", "PIIFinding", "PIIMaskingFilter", "SafetyPolicy", "Verdict", "compact",
    "find_pii", "install_log_masking", "luhn_ok", "mask_pii", "normalize", "repetition_rate", "uninstall_log_masking",
    "valid_cn_id",
]
