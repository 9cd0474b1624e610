"""What the hook reads from its connection, without Airflow: one pure constructor from the fields.

:meth:`HookSettings.from_connection` takes the connection's fields as plain values (id, host, port,
password, extras) and the :class:`~airflow_revcent.api.options.RequestOptions` that win over the extras;
it returns the validated settings and the messages the caller should log, so it is tested with plain
values and the hook only fetches the connection and logs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_revcent.api.options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRY_INITIAL_BACKOFF,
    DEFAULT_RETRY_MAX_ATTEMPTS,
    DEFAULT_RETRY_MAX_SECONDS,
    RequestOptions,
    flag,
    number,
)
from airflow_revcent.api.responses import base_url_from_host
from airflow_revcent.exceptions import RevCentConfigError

#: Connection extras the hook understands. Nothing from the extras is ever sent as a header.
KNOWN_EXTRAS = (
    "max_concurrency",
    "max_requests_per_second",
    "account_requests_per_second",
    "account_pool_slots",
    "connect_timeout",
    "read_timeout",
    "request_timeout",
    "stall_timeout",
    "timeout",
    "retry_max_attempts",
    "retry_max_seconds",
    "retry_initial_backoff",
    "verify",
    "openapi_spec",
)

#: Added to the longest request (its retries and timeouts) to give the default stall timeout.
STALL_MARGIN_SECONDS = 60.0


def account_share(own: float, account: Any, slots: Any) -> float:
    """The pace of one task when the account's allowance is shared through an Airflow pool.

    Every task that calls the account runs in one pool of ``slots`` slots (one slot each), so at most
    ``slots`` run at once and each may send ``account / slots`` requests per second: together they
    stay within ``account``. The task's own ceiling applies when it is lower (``0`` means none).

    :param own: the task's own ``max_requests_per_second`` (0: no ceiling).
    :param account: the connection extra ``account_requests_per_second`` (None: not shared).
    :param slots: the connection extra ``account_pool_slots``, the pool's size (default 1).
    """
    if account in (None, ""):
        return own
    total = number(account, "account_requests_per_second", minimum=0.001)
    share = total / number(1 if slots in (None, "") else slots, "account_pool_slots", minimum=1, integer=True)
    return share if own == 0 else min(own, share)


#: A message for the caller to log: (logging level, format, arguments).
Note = tuple[int, str, tuple[Any, ...]]


@dataclass(frozen=True)
class HookSettings:
    """Everything the hook reads from its connection, merged with the options that override it."""

    base_url: str
    api_key: str
    max_concurrency: int
    max_requests_per_second: float
    connect_timeout: float
    read_timeout: float
    request_timeout: float
    stall_timeout: float | None
    retry_max_attempts: int
    retry_max_seconds: float
    retry_initial_backoff: float
    verify: bool
    #: The connection extra ``openapi_spec``: a file path or URL of RevCent's OpenAPI document (None: fetch
    #: ``/v2/openapi.json`` from the API).
    openapi_spec: str | None = None

    def __repr__(self) -> str:
        # Never show the key, even in a debugger or a traceback's locals.
        return f"HookSettings(base_url={self.base_url!r}, api_key=***, max_concurrency={self.max_concurrency})"

    @property
    def stall_seconds(self) -> float:
        """Seconds without any page after which a read fails: ``stall_timeout``, or by default the longest
        one request can legitimately take (its retry budget and timeouts) plus a minute."""
        if self.stall_timeout is not None:
            return self.stall_timeout
        return (self.retry_max_seconds + self.request_timeout + self.read_timeout + self.connect_timeout
                + STALL_MARGIN_SECONDS)

    @classmethod
    def from_connection(
        cls,
        conn_id: str,
        *,
        host: str | None,
        port: int | None,
        password: str | None,
        extra: Mapping[str, Any] | None,
        options: RequestOptions | None = None,
        login: str | None = None,
    ) -> tuple[HookSettings, list[Note]]:
        """Validate a connection's fields and merge ``options`` over its extras.

        :param conn_id: the connection's id, for messages.
        :param host: its host field (the API root; empty for the default).
        :param port: its port field.
        :param password: its password field (the API key).
        :param extra: its extras, as a dict.
        :param options: request options that win over the extras of the same name.
        :param login: its login field: never sent (HttpHook would send login and password as basic auth);
            a note says so when it is set.
        :return: the settings, and the messages to log (level, format, arguments).
        """
        notes: list[Note] = []
        # The connection form stores its fields as plain keys; older forms used a prefix.
        extras = {k.removeprefix("extra__revcent__"): v for k, v in (extra or {}).items()}
        unknown = sorted(set(extras) - set(KNOWN_EXTRAS))
        if unknown:
            notes.append((logging.WARNING,
                          "Connection %r has extras this hook does not use (ignored, never sent): %s",
                          (conn_id, ", ".join(unknown))))
        if (login or "").strip():
            notes.append((logging.WARNING,
                          "Connection %r has a login; it is ignored and never sent: the API key (password field) is "
                          "sent as the x-api-key header only.", (conn_id,)))
        api_key = (password or "").strip()
        if any(not ch.isprintable() or ch.isspace() for ch in api_key):
            # requests would refuse it with an error quoting the header, key included.
            raise RevCentConfigError(
                f"Connection {conn_id!r}: the API key contains spaces, line breaks or other "
                "unprintable characters (was it pasted across lines?). Paste it again as one line."
            )
        if not api_key:
            raise RevCentConfigError(
                f"Connection {conn_id!r} has no API key: put your RevCent API key in its password field."
            )
        timeout = extras.get("timeout")
        merged = {k: v for k, v in extras.items() if k in KNOWN_EXTRAS}
        if timeout is not None:
            merged.setdefault("connect_timeout", timeout)
            merged.setdefault("read_timeout", timeout)
        merged.update((options or RequestOptions()).given())

        def pick(name: str, default: Any) -> Any:
            return merged.get(name, default)

        verify = flag(pick("verify", True), "verify")
        own_rate = number(pick("max_requests_per_second", DEFAULT_MAX_REQUESTS_PER_SECOND),
                          "max_requests_per_second", minimum=0)
        rate = account_share(own_rate, extras.get("account_requests_per_second"), extras.get("account_pool_slots"))
        if rate != own_rate:
            notes.append((logging.INFO,
                          "Pacing at %.3g requests/s: the account's %s requests/s shared by %s pool slots",
                          (rate, extras.get("account_requests_per_second"), extras.get("account_pool_slots", 1))))
        if not verify:
            notes.append((logging.WARNING,
                          "TLS certificate verification is OFF for connection %r (extra verify=false): the API key "
                          "can be intercepted. Use it only against a local sandbox.", (conn_id,)))
        stall = pick("stall_timeout", None)
        spec = pick("openapi_spec", None)
        if spec is not None and (not isinstance(spec, str) or not spec.strip()):
            raise RevCentConfigError(
                f"Connection {conn_id!r}: extra openapi_spec={spec!r} must be a file path or an http(s) URL of "
                "RevCent's OpenAPI document (or be left out to fetch /v2/openapi.json from the API)."
            )
        settings = cls(
            base_url=base_url_from_host(host, port),
            api_key=api_key,
            max_concurrency=int(number(pick("max_concurrency", DEFAULT_MAX_CONCURRENCY), "max_concurrency",
                                       minimum=1, integer=True)),
            max_requests_per_second=rate,
            connect_timeout=number(pick("connect_timeout", DEFAULT_CONNECT_TIMEOUT), "connect_timeout",
                                   minimum=0.001),
            read_timeout=number(pick("read_timeout", DEFAULT_READ_TIMEOUT), "read_timeout", minimum=0.001),
            request_timeout=number(pick("request_timeout", DEFAULT_REQUEST_TIMEOUT), "request_timeout",
                                   minimum=0.001),
            stall_timeout=None if stall in (None, "") else number(stall, "stall_timeout", minimum=0.001),
            retry_max_attempts=int(number(pick("retry_max_attempts", DEFAULT_RETRY_MAX_ATTEMPTS),
                                          "retry_max_attempts", minimum=1, integer=True)),
            retry_max_seconds=number(pick("retry_max_seconds", DEFAULT_RETRY_MAX_SECONDS), "retry_max_seconds",
                                     minimum=0),
            retry_initial_backoff=number(pick("retry_initial_backoff", DEFAULT_RETRY_INITIAL_BACKOFF),
                                         "retry_initial_backoff", minimum=0),
            verify=verify,
            openapi_spec=spec.strip() if spec is not None else None,
        )
        return settings, notes
