"""``python -m airflow_revcent``: the provider's command line (today: ``resources``)."""

from __future__ import annotations

from airflow_revcent.resources.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
