"""What differs between the Airflow 3 minor versions this package supports (3.1, 3.2, 3.3).

Kept to values a DAG file needs; nothing here imports Airflow at module level.
"""

from __future__ import annotations

from importlib.metadata import version

#: The task SDK that first takes ``retry_exponential_backoff`` as a multiplier (Airflow 3.2).
_MULTIPLIER_SDK = (1, 2)


def _sdk_version() -> tuple[int, int]:
    major, minor, *_ = version("apache-airflow-task-sdk").split(".")
    return int(major), int(minor)


def exponential_backoff(multiplier: float = 2.0) -> float | bool:
    """The ``retry_exponential_backoff`` value for this Airflow.

    Airflow 3.2 and later take a multiplier; Airflow 3.1 takes only a bool, where ``True`` doubles the
    delay each retry (a multiplier of 2).

    :param multiplier: the multiplier wanted on Airflow 3.2 and later (``0`` for a constant delay).
    """
    if _sdk_version() >= _MULTIPLIER_SDK:
        return multiplier
    return multiplier > 0
