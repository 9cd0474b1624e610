"""What differs between the Airflow 3 minor versions this package supports (3.1, 3.2, 3.3).

Kept to what a DAG file or the operator needs; nothing here imports Airflow at module level.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


def has_retry_policies() -> bool:
    """Whether this Airflow's task SDK has task retry policies (``ExceptionRetryPolicy``, Airflow 3.3)."""
    try:
        from airflow.sdk import ExceptionRetryPolicy  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def _fail_exception() -> type[Exception]:
    """``AirflowFailException``: in ``airflow.sdk.exceptions`` from Airflow 3.2, in ``airflow.exceptions`` on 3.1."""
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:
        # Airflow 3.1 only; later releases keep a deprecated alias there, which the stubs may not show.
        from airflow.exceptions import AirflowFailException  # type: ignore[no-redef,attr-defined,unused-ignore]
    return AirflowFailException


@contextmanager
def failing_fast(errors: tuple[type[Exception], ...], *, enabled: bool) -> Iterator[None]:
    """Fail the task without retrying on ``errors``, where Airflow has no retry policy to say so.

    The error raised is the original one, of a class that is also ``AirflowFailException`` (which every
    Airflow 3 task runner fails without retrying): its type, message and attributes are unchanged, so
    ``except RevCentConfigError`` and the task log read as on Airflow 3.3.

    :param errors: the exception classes another try cannot fix.
    :param enabled: whether to do it (``False`` where a retry policy decides, Airflow 3.3).
    """
    try:
        yield
    except errors as exc:
        if not enabled:
            raise
        fail = _fail_exception()
        if isinstance(exc, fail):
            raise
        cls = type(type(exc).__name__, (type(exc), fail), {"__module__": type(exc).__module__,
                                                           "__qualname__": type(exc).__qualname__})
        final = cls.__new__(cls, *exc.args)
        final.args = exc.args
        final.__dict__.update(exc.__dict__)
        raise final.with_traceback(exc.__traceback__) from exc.__cause__


def max_map_length() -> int:
    """``[core] max_map_length``: the most mapped task instances one mapped task may expand to (default 1024).

    Read from the task SDK's configuration (Airflow 3.2 and later), else from Airflow's own (3.1).
    """
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf  # type: ignore[no-redef,unused-ignore]
    return int(conf.getint("core", "max_map_length", fallback=1024))
