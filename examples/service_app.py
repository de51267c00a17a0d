"""The customer service call example app: ``python -m examples.service_app`` (from the repository
root), then open the address it prints (http://127.0.0.1:8000/apps/service.html). Options: ``--help``."""

from examples.webapp import main

if __name__ == "__main__":
    raise SystemExit(main("service"))
