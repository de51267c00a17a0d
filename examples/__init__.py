"""Runnable examples: web apps per vertical (``python -m examples.medical_app``), ten-line API scripts, a
subclassed and registered pipeline, and a third-party plugin package (``plugin_faq/``)."""
