"""The contract review example app: ``python -m examples.legal_app`` (from the repository
root), then open the address it prints (http://127.0.0.1:8000/apps/legal.html). Options: ``--help``."""

from examples.webapp import main

if __name__ == "__main__":
    raise SystemExit(main("legal"))
