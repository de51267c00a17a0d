"""What the benchmark scripts share: the printed-and-kept report lines, the GPUs' bandwidth peaks."""

from __future__ import annotations

from pathlib import Path

#: peak memory bandwidth (bytes/s) of GPUs we may run on, by a substring of the device name (first match wins)
PEAK_BW = {"H200": 4.8e12, "H100 SXM": 3.35e12, "H100": 3.35e12, "H800": 3.35e12, "A100-SXM4-80GB": 2.04e12,
           "A100": 1.94e12, "L40S": 0.864e12, "A10": 0.6e12, "L4": 0.3e12, "RTX 4090": 1.0e12}


def peak_bandwidth(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BW.items() if k in device_name), None)


class Report:
    """``out(line)`` prints a line at once and keeps it; ``write(path)`` saves the kept lines (``--markdown``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, s: str = "") -> None:
        print(s, flush=True)
        self.lines.append(s)

    def write(self, path: str | None) -> None:
        if path:
            Path(path).write_text("\n".join(self.lines) + "\n", encoding="utf-8")
