"""The chest CT report example app: ``python -m examples.medical_app`` (from the repository
root), then open the address it prints (http://127.0.0.1:8000/apps/medical.html). Options: ``--help``."""

from examples.webapp import main

if __name__ == "__main__":
    raise SystemExit(main("medical"))
