"""Payment and refund notifies, POSTed to the merchant's notify_url as WeChat Pay does: at once,
then again on the redelivery schedule (× `retry_scale`) until the merchant answers correctly
(spec §1.9, §2.3). One daemon thread per notify, sleeping between attempts; `reset` orphans the
pending ones (each checks the generation it was born in before every attempt).

The per-test faults that shape notifies are taken here: `lost_notify`, `duplicate_notify` and
`signtest_probe` once per notify; `stale_notify_timestamp` and `bad_notify_signature` once per
attempt, so the redelivery after the merchant's refusal is a good one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import httpx

from tenpay_adapter.sim_ledger import Refund, Trade
from tenpay_adapter.sim_messages import (
    refund_notify_json,
    transaction_json,
    v2_payment_notify,
    v2_refund_notify,
    v3_notify_body,
    v3_signed_headers,
)
from tenpay_adapter.v2_signing import TenpayProtocolError, parse_xml, to_xml

if TYPE_CHECKING:
    from tenpay_adapter.sim_state import TenpaySimState

logger = logging.getLogger(__name__)

NotifyKind = Literal["payment", "refund", "probe"]
PER_ATTEMPT_FAULTS = frozenset({"stale_notify_timestamp", "bad_notify_signature"})


@dataclass(frozen=True)
class Delivery:
    """One POST of a notify and how the merchant answered it. For a `probe` (a SIGNTEST
    signature), answered_ok means the merchant refused it, as it must."""

    kind: NotifyKind
    api_version: str
    event_id: str  # v3: the notify id; v2: the out_trade_no or out_refund_no
    url: str
    body: bytes
    headers: dict[str, str]
    attempt: int  # 0 for the first try
    status: int | None  # None: no answer (timeout, refused connection)
    answered_ok: bool
    at: datetime
    error: str | None = None


@dataclass(frozen=True)
class _Job:
    kind: Literal["payment", "refund"]
    api_version: str
    event_id: str
    url: str
    body: bytes
    bad_body: bytes | None = None  # v2 payment: the same XML with a wrong sign

    @property
    def fault_endpoint(self) -> str:
        return f"{self.kind}_notify"


def _answered_ok(job: _Job, response: httpx.Response) -> bool:
    if job.api_version == "v3":
        return response.status_code in (200, 204)  # spec §2.3
    if response.status_code != 200:
        return False
    try:
        return parse_xml(response.content).get("return_code") == "SUCCESS"  # spec §1.9
    except TenpayProtocolError:
        return False


class Notifier:
    def __init__(self, state: TenpaySimState) -> None:
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
        """Starts a POST if its notify is still current (checked and counted atomically)."""
        with self._lock:
            if generation != self._generation or self._stop.is_set():
                return False
            self._in_flight += 1
            return True

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    # -- what is sent ------------------------------------------------------------------------

    def payment(self, trade: Trade) -> None:
        config, url = self._config, trade.request.notify_url
        if trade.request.api_version == "v3":
            # The notify carries the truth even while a `notify_before_query` mask holds.
            resource = transaction_json(config, replace(trade, masked_until=0.0))
            event_id, body = v3_notify_body(
                config, kind="transaction", resource=resource, created_at=self._state.now()
            )
            self._dispatch(_Job("payment", "v3", event_id, url, body))
            return
        body = to_xml(v2_payment_notify(config, trade))
        bad = to_xml(v2_payment_notify(config, trade, bad_signature=True))
        self._dispatch(_Job("payment", "v2", trade.out_trade_no, url, body, bad))

    def refund(self, refund: Refund, url: str) -> None:
        """Waits for the refund to settle, then notifies its result."""
        with self._lock:
            generation = self._generation
        threading.Thread(
            target=self._settle_then_notify,
            args=(refund, url, generation),
            name=f"tenpay-sim-refund-{refund.out_refund_no}",
            daemon=True,
        ).start()

    def _settle_then_notify(self, refund: Refund, url: str, generation: int) -> None:
        if self._stop.wait(max(0.0, refund.settle_due - time.monotonic())):
            return
        try:
            self._notify_settled(refund, url, generation)
        except Exception:  # the thread must outlive anything odd in the ledger
            logger.exception("refund %s not notified", refund.out_refund_no)

    def _notify_settled(self, refund: Refund, url: str, generation: int) -> None:
        settled = self._state.ledger.settle_refund(refund.out_refund_no)
        trade = self._state.ledger.find(out_trade_no=refund.out_trade_no)
        if settled is None or trade is None or not self._current(generation):
            return
        if refund.request.api_version == "v3":
            resource = refund_notify_json(self._config, settled, trade)
            event_id, body = v3_notify_body(
                self._config, kind="refund", resource=resource, created_at=self._state.now()
            )
            self._dispatch(_Job("refund", "v3", event_id, url, body))
        else:
            body = to_xml(v2_refund_notify(self._config, settled, trade))
            self._dispatch(_Job("refund", "v2", settled.out_refund_no, url, body))

    # -- how it is sent ----------------------------------------------------------------------

    def _dispatch(self, job: _Job) -> None:
        take = self._state.take_fault
        if take(job.fault_endpoint, frozenset({"lost_notify"})) is not None:
            self._state.record_lost_notify(job.event_id)
            return
        copies = 2 if take(job.fault_endpoint, frozenset({"duplicate_notify"})) else 1
        probe = job.api_version == "v3" and take(job.fault_endpoint, frozenset({"signtest_probe"}))
        with self._lock:
            generation = self._generation
        threading.Thread(
            target=self._deliver_all,
            args=(job, generation, copies, bool(probe)),
            name=f"tenpay-sim-notify-{job.event_id}",
            daemon=True,
        ).start()

    def _deliver_all(self, job: _Job, generation: int, copies: int, probe: bool) -> None:
        try:
            if probe:
                self._post(job, generation, attempt=0, probe=True)
            for _ in range(copies):  # `duplicate_notify`: the same event, delivered twice
                self._deliver(job, generation)
        except Exception:  # the thread must outlive any receiver's misbehaviour
            logger.exception("notify %s failed", job.event_id)

    def _deliver(self, job: _Job, generation: int) -> None:
        config = self._config
        schedule = config.v3_notify_retry_s if job.api_version == "v3" else config.v2_notify_retry_s
        delays = (0.0, *(delay * config.retry_scale for delay in schedule))
        for attempt, delay in enumerate(delays):
            if self._stop.wait(delay):
                return
            answered = self._post(job, generation, attempt=attempt, probe=False)
            if answered is not False:  # True: done; None: orphaned by a reset
                return

    def _request(self, job: _Job, *, probe: bool) -> tuple[bytes, dict[str, str]]:
        config, take = self._config, self._state.take_fault
        endpoint = job.fault_endpoint
        if job.api_version == "v2":
            bad = job.bad_body is not None and take(endpoint, frozenset({"bad_notify_signature"}))
            body = job.bad_body if bad and job.bad_body is not None else job.body
            return body, {"Content-Type": "text/xml; charset=utf-8"}
        # A probe takes no per-attempt fault: those are meant for the real notify.
        stale = not probe and take(endpoint, frozenset({"stale_notify_timestamp"})) is not None
        bad_signature = (
            not probe and take(endpoint, frozenset({"bad_notify_signature"})) is not None
        )
        # Older than the merchant's window by a minute, yet correctly signed.
        timestamp = int(time.time() - config.timestamp_window_s - 60) if stale else None
        headers = v3_signed_headers(
            config, job.body, timestamp=timestamp, bad_signature=bad_signature, probe=probe
        )
        return job.body, {"Content-Type": "application/json", **headers}

    def _post(self, job: _Job, generation: int, *, attempt: int, probe: bool) -> bool | None:
        """Whether the merchant answered correctly; None when a reset orphaned the notify."""
        if not self._begin(generation):
            return None
        try:
            return self._send(job, generation, attempt=attempt, probe=probe)
        finally:
            self._end()

    def _send(self, job: _Job, generation: int, *, attempt: int, probe: bool) -> bool:
        body, headers = self._request(job, probe=probe)
        status: int | None = None
        error: str | None = None
        ok = False
        try:
            with httpx.Client(timeout=self._config.notify_timeout_s) as client:
                response = client.post(job.url, content=body, headers=headers)
            status = response.status_code
            ok = not response.is_success if probe else _answered_ok(job, response)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if self._current(generation):
            self._state.record_delivery(
                Delivery(
                    kind="probe" if probe else job.kind,
                    api_version=job.api_version,
                    event_id=job.event_id,
                    url=job.url,
                    body=body,
                    headers=headers,
                    attempt=attempt,
                    status=status,
                    answered_ok=ok,
                    at=datetime.now(UTC),
                    error=error,
                )
            )
        return ok
