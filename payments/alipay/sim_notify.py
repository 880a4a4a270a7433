"""Async notifies (spec §3.3), form-POSTed to the trade's notify_url as Alipay does: at once,
then again at 4m, 10m, 10m, 1h, 2h, 6h, 15h (× `retry_scale`) until the merchant answers with
the plain text `success`, 8 attempts at most. One daemon thread per notify, sleeping between
attempts; `reset` orphans the pending ones (each checks the generation it was born in).

Each attempt is stamped and signed afresh (notify_time changes, notify_id does not). Faults:
`lost_notify` and `duplicate_notify` once per notify; `bad_notify_signature` once per attempt,
so the redelivery after the merchant's refusal is a good one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from payments.alipay.signing import beijing_timestamp
from payments.alipay.sim_messages import new_notify_id, notify_fields, sign_notify
from payments.alipay.sim_trades import Refund, Trade

if TYPE_CHECKING:
    from payments.alipay.sim_state import AlipaySimState

logger = logging.getLogger(__name__)

SUCCESS_REPLY = b"success"
_ANSWER_KEPT = 200  # characters of the merchant's answer kept in a Delivery


@dataclass(frozen=True)
class NotifyEvent:
    trade: Trade  # as it was when the status changed
    status: str
    refund: Refund | None = None  # a refund's notify carries refund_fee and gmt_refund


@dataclass(frozen=True)
class Delivery:
    """One POST of a notify and how the merchant answered it."""

    notify_id: str
    out_trade_no: str
    trade_status: str
    url: str
    fields: dict[str, str]  # the form as posted, sign included
    attempt: int  # 0 for the first try
    status: int | None  # None: no answer (timeout, refused connection)
    answer: str
    answered_ok: bool
    at: datetime
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "notify_id": self.notify_id,
            "out_trade_no": self.out_trade_no,
            "trade_status": self.trade_status,
            "url": self.url,
            "fields": dict(self.fields),
            "attempt": self.attempt,
            "status": self.status,
            "answer": self.answer,
            "answered_ok": self.answered_ok,
            "at": self.at.isoformat(),
            "error": self.error,
        }


@dataclass(frozen=True)
class _Job:
    notify_id: str
    out_trade_no: str
    status: str
    url: str
    fields: dict[str, str]  # unsigned, without notify_time


class Notifier:
    def __init__(self, state: AlipaySimState) -> None:
        self._state = state
        self._config = state.config
        self._stop = threading.Event()
        self._generation = 0
        self._in_flight = 0
        self._lock = threading.Condition()

    def reset(self) -> None:
        """Orphans every pending notify and waits for the POSTs already on the wire, so none
        lands after a test's reset."""
        with self._lock:
            self._generation += 1
            self._lock.wait_for(lambda: self._in_flight == 0, self._config.notify_timeout_s + 1)

    def close(self) -> None:
        self._stop.set()

    def _current(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation and not self._stop.is_set()

    def _begin(self, generation: int) -> bool:
        with self._lock:
            if generation != self._generation or self._stop.is_set():
                return False
            self._in_flight += 1
            return True

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    # -- sending -----------------------------------------------------------------------------

    def send(self, event: NotifyEvent) -> None:
        trade = event.trade
        notify_id = new_notify_id(self._state.now())
        fields = notify_fields(
            self._config, trade, event.status, refund=event.refund, notify_id=notify_id
        )
        job = _Job(notify_id, trade.out_trade_no, event.status, trade.request.notify_url, fields)
        take = self._state.take_fault
        if take("notify", frozenset({"lost_notify"})) is not None:
            self._state.record_lost_notify(notify_id)
            return
        copies = 2 if take("notify", frozenset({"duplicate_notify"})) else 1
        with self._lock:
            generation = self._generation
        threading.Thread(
            target=self._deliver_all,
            args=(job, generation, copies),
            name=f"alipay-sim-notify-{notify_id}",
            daemon=True,
        ).start()

    def _deliver_all(self, job: _Job, generation: int, copies: int) -> None:
        try:
            for _ in range(copies):  # `duplicate_notify`: the same notify_id, delivered twice
                self._deliver(job, generation)
        except Exception:  # the thread must outlive any receiver's misbehaviour
            logger.exception("notify %s failed", job.notify_id)

    def _deliver(self, job: _Job, generation: int) -> None:
        config = self._config
        delays = (0.0, *(delay * config.retry_scale for delay in config.notify_retry_s))
        for attempt, delay in enumerate(delays):
            if self._stop.wait(delay):
                return
            answered = self._post(job, generation, attempt=attempt)
            if answered is not False:  # True: done; None: orphaned by a reset
                return

    def _post(self, job: _Job, generation: int, *, attempt: int) -> bool | None:
        if not self._begin(generation):
            return None
        try:
            return self._send(job, generation, attempt=attempt)
        finally:
            self._end()

    def _send(self, job: _Job, generation: int, *, attempt: int) -> bool:
        bad = self._state.take_fault("notify", frozenset({"bad_notify_signature"})) is not None
        stamped = job.fields | {"notify_time": beijing_timestamp(self._state.now())}
        form = sign_notify(self._config, stamped, bad=bad)
        status: int | None = None
        answer, error, ok = "", None, False
        try:
            with httpx.Client(timeout=self._config.notify_timeout_s) as client:
                response = client.post(job.url, data=form)
            status = response.status_code
            answer = response.text[:_ANSWER_KEPT]
            # spec §3.3: the plain text `success`, nothing else, is an acknowledgement.
            ok = status == 200 and response.content == SUCCESS_REPLY
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if self._current(generation):
            self._state.record_delivery(
                Delivery(
                    notify_id=job.notify_id,
                    out_trade_no=job.out_trade_no,
                    trade_status=job.status,
                    url=job.url,
                    fields=form,
                    attempt=attempt,
                    status=status,
                    answer=answer,
                    answered_ok=ok,
                    at=datetime.now(UTC),
                    error=error,
                )
            )
        return ok
