"""The metering run of one tenant: checkpoint, replay, daily values, summaries, events.

A run costs the tenant's entities (the stored meter state) plus the rows of the days
after the checkpoint, read one day at a time; the checkpoint trails the newest metered
day by ``late_data_days``, so a late file within that window is replayed on its own day
and an older one is reported, not applied. A run longer than one invocation saves its
progress and goes on in the next.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .. import publishing
from ..checkpoint import StateUnusable
from ..config import Subscription
from ..forecast import lookback_start
from ..metering import Meter, effective_as_of, first_needed_day, metering_as_of
from ..paths import parse_key
from ..publishing import UsageEvent
from ..quality import overflowing
from ..reader import collector_paused
from ..summary import build_summary, summary_alerts
from ..windows import ROLLING_DAYS, day_range, rolling_start
from .ports import (
    Conflict,
    Head,
    Manifest,
    Objects,
    Pending,
    Published,
    Publisher,
    PublishRejected,
    RunProgress,
    Store,
    TenantState,
)
from .requests import Reason

CHECKPOINT_PREFIX = "checkpoints/"
#: Beside the messages: an as-of day's full alert list when a message carries it bounded
#: (``<tenant>/<day>/alerts.json``), and a message the topic refused for good.
MESSAGES_PREFIX = "messages/"
#: How much earlier than a head was saved a file's arrival still makes the head suspect: a
#: manifest written just before a run can be read only after it (clocks and visibility).
STALE_MARGIN = timedelta(minutes=1)
#: A run's lease on its tenant when the caller names no deadline: the longest invocation.
LEASE = timedelta(minutes=15)
#: What an invocation keeps, at the least, for saving a run's progress before its end.
RESERVE = timedelta(seconds=60)
#: A run saves its progress at least this often: an invocation killed out of memory
#: loses no more.
SAVE_EVERY = timedelta(minutes=5)
#: How long a message handed to the topic may wait for the ledger's receipt before it is
#: taken as not sent and published again (the ledger's queue delivers within seconds).
CONFIRM_AFTER = timedelta(minutes=2)


class AwaitingReceipt(RuntimeError):
    """A message a failed run handed to the topic is not confirmed yet: the run is retried
    later rather than risk publishing it twice."""


@dataclass
class RunResult:
    tenant: str
    status: str  # metered | continued | covered | no_subscription
    as_of: date | None = None  # continued: the day of the run that goes on
    days_replayed: int = 0
    rows_replayed: int = 0
    published: list[tuple[str, str, int]] = field(default_factory=list)  # (event, as_of, rev)
    total_qlus: str | None = None
    qlus: dict[str, str] = field(default_factory=dict)  # per product, as of the run's day
    checkpoint_day: date | None = None
    next_day: date | None = None  # continued: the day the next invocation goes on from
    notes: list[str] = field(default_factory=list)  # for the operator (a state not used ...)
    refused: list[str] = field(default_factory=list)  # messages the topic refused for good

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (days as ISO text): a Lambda's response must serialize."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self), default=str))
        return data


class MeterService:
    """Meters tenants from stored state and publishes what changed.

    A run replays its days one at a time, reading one day's rows at once. When the
    invocation's end draws near (``reserve`` left, beyond the slowest day so far and the
    last save), the run saves its meter state and where it stands (``RunProgress``) and
    answers ``continued``: the next invocation goes on from there. It also saves every
    ``save_every``, so an invocation killed out of memory loses little. Nothing is
    published until the last day is replayed."""

    def __init__(
        self,
        store: Store,
        objects: Objects,
        publisher: Publisher,
        state_bucket: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        margin: timedelta = STALE_MARGIN,
        reserve: timedelta = RESERVE,
        save_every: timedelta = SAVE_EVERY,
    ) -> None:
        self.store, self.objects, self.publisher = store, objects, publisher
        self.state_bucket, self.clock, self.margin = state_bucket, clock, margin
        self.reserve, self.save_every = reserve, save_every

    def _holds(self, sub: Subscription, state: TenantState, day: date) -> bool:
        """Whether the head saved for ``day`` holds (``holds``) against the manifests of the
        days after the checkpoint it was computed on, up to ``day``."""
        head = state.heads.get(day)
        if head is None:
            return False
        first = head.base + timedelta(days=1) if head.base else sub.start_date
        return holds(state, head, self.store.manifests(state.tenant, first, day), self.margin)

    def _promote(
        self, sub: Subscription, state: TenantState, keep_until: date, now: datetime
    ) -> None:
        """Move the checkpoint to ``keep_until`` without a replay when the head saved for
        that day holds (otherwise the run replays from the checkpoint and saves one)."""
        if state.checkpoint_day and state.checkpoint_day >= keep_until:
            return
        if self._holds(sub, state, keep_until):
            state.checkpoint_key = _head_key(state.tenant, keep_until)
            self._freeze(state, keep_until, now, [])

    def _freeze(self, state: TenantState, day: date, started: datetime, folded: list[str]) -> None:
        """The checkpoint now holds the days up to ``day``: a file for them that arrives
        after ``checkpoint_at`` (the run's start, ``margin`` early: a manifest written just
        before may be read only after) is too late, unless the run read it and folded it
        in (``folded``: read for those days and arrived after that time)."""
        state.checkpoint_day, state.checkpoint_at = day, started - self.margin
        oldest = day - timedelta(days=ROLLING_DAYS - 1)  # older files are no longer reported
        kept = {f for f in state.checkpoint_files if parse_key(f.rsplit("#", 1)[0]).day >= oldest}
        state.checkpoint_files = sorted(kept | set(folded))

    def _load(self, key: str, sub: Subscription, notes: list[str]) -> Meter | None:
        """A stored meter state, or None (with a note) when it cannot serve."""
        try:
            return Meter.loads(self.objects.get(self.state_bucket, key), sub)
        except (StateUnusable, KeyError) as exc:
            reason = str(exc) if isinstance(exc, StateUnusable) else "missing"
            notes.append(f"stored state {key} not used ({reason}): recomputed from stored rows")
            return None

    def _restore(
        self, sub: Subscription, state: TenantState, as_of: date, notes: list[str]
    ) -> tuple[Meter, date | None]:
        """The newest usable meter state and the day it covers.

        The newest head serves when it holds and the checkpoint stands at ``as_of -
        late_data_days``; otherwise the checkpoint, from which late files are replayed on
        their own days; with neither, the start. A state that cannot serve (another
        format, other counting terms, gone) voids the saved heads: the run recomputes."""
        candidates: list[tuple[str, date]] = []
        head = newest_head(state, as_of, as_of - timedelta(days=sub.late_data_days), sub.start_date)
        if head and self._holds(sub, state, head):
            candidates.append((_head_key(state.tenant, head), head))
        if state.checkpoint_key and state.checkpoint_day:
            candidates.append((state.checkpoint_key, state.checkpoint_day))
        for key, day in candidates:
            meter = self._load(key, sub, notes)
            if meter is not None:
                return meter, day
            state.heads.clear()
            break
        return Meter(sub), None

    def run(
        self,
        tenant: str,
        as_of: date,
        deadline: datetime | None = None,
        reason: Reason = "request",
        requested_at: datetime | None = None,
    ) -> RunResult:
        """Meter one tenant as of a day, holding a lease on it until ``deadline`` (when the
        invocation would be ended): runs of one tenant never overlap. A run another
        invocation left unfinished is finished first. A late-data request that a run
        started since has covered is answered ``covered``."""
        sub = self.store.get_subscription(tenant)
        if sub is None:
            return RunResult(tenant, "no_subscription")
        started, owner = self.clock(), uuid.uuid4().hex
        until = deadline or started + LEASE
        if not self.store.lease(tenant, owner, until, started):
            raise Conflict(f"{tenant}: another run holds the tenant")
        try:
            with collector_paused():
                return self._serve(sub, effective_as_of(sub, as_of), until, reason, requested_at)
        finally:
            self.store.release(tenant, owner)

    def _serve(
        self,
        sub: Subscription,
        as_of: date,
        deadline: datetime,
        reason: Reason,
        requested_at: datetime | None,
    ) -> RunResult:
        state = self.store.get_state(sub.subscription_id)
        covered = (
            state.last_run_at and requested_at and state.last_run_at - self.margin >= requested_at
        )
        if reason == "late_data" and state.run is None and covered:
            return RunResult(sub.subscription_id, "covered", as_of)
        earlier: list[str] = []  # what a run of another day finished first had to say
        while True:
            notes: list[str] = []
            meter, run = self._resume(sub, state, notes) if state.run else (None, None)
            if meter is None or run is None:
                run = state.run = None
                meter, run = self._begin(sub, state, as_of, self.clock(), notes)
            result = self._go_on(sub, state, run, meter, deadline)
            result.notes = earlier + notes + result.notes
            if result.status == "continued" or run.as_of == as_of:
                return result
            earlier = [*result.notes, f"finished first the run as of {run.as_of} left unfinished"]
            # the run left unfinished was of another day: now this request's, time allowing
            if deadline - self.clock() < self.reserve * 2:
                return RunResult(sub.subscription_id, "continued", as_of, next_day=as_of)

    def _begin(
        self,
        sub: Subscription,
        state: TenantState,
        as_of: date,
        started: datetime,
        notes: list[str],
    ) -> tuple[Meter, RunProgress]:
        """A new run: the checkpoint moved if it can be, the state to start from."""
        basis = (state.checkpoint_day, state.checkpoint_at, list(state.checkpoint_files))
        self._promote(sub, state, as_of - timedelta(days=sub.late_data_days), started)
        meter, restored = self._restore(sub, state, as_of, notes)
        base = state.checkpoint_day if restored else None  # what the days before first_new hold
        first_new = restored + timedelta(days=1) if restored else sub.start_date
        run = RunProgress(
            as_of=as_of,
            started=started,
            first_new=first_new,
            base=base,
            next_day=first_new,
            late_basis=basis,
        )
        return meter, run

    def _resume(
        self, sub: Subscription, state: TenantState, notes: list[str]
    ) -> tuple[Meter | None, RunProgress | None]:
        """The run an earlier invocation left, with the state it saved (None: start over)."""
        run = state.run
        assert run is not None
        if run.state_key is None:
            return None, None
        meter = self._load(run.state_key, sub, notes)
        return (meter, run) if meter is not None else (None, None)

    def _go_on(
        self,
        sub: Subscription,
        state: TenantState,
        run: RunProgress,
        meter: Meter,
        deadline: datetime,
    ) -> RunResult:
        """Replay the run's days from ``next_day``, one day's rows at a time; save the
        progress when the invocation's end draws near (answer ``continued``); at the end,
        save the head, publish and let the run go."""
        tenant = sub.subscription_id
        keep_until = run.as_of - timedelta(days=sub.late_data_days)
        slowest = saving = timedelta(0)
        saved_at = self.clock()
        for day in day_range(run.next_day, run.as_of):
            began = self.clock()
            # every invocation replays a day at least: one that cannot is killed at its
            # timeout, comes back and ends in the failure queue (a tenant past the limits)
            if slowest and deadline - began < self.reserve + slowest + saving:
                self._save_progress(state, run, meter)
                return RunResult(tenant, "continued", run.as_of, next_day=run.next_day)
            if began - saved_at >= self.save_every:
                self._save_progress(state, run, meter)
                saved_at, saving = self.clock(), self.clock() - began
            self._replay(sub, state, run, meter, day, keep_until)
            slowest = max(slowest, self.clock() - began)
        return self._finish(sub, state, run, meter)

    def _replay(
        self,
        sub: Subscription,
        state: TenantState,
        run: RunProgress,
        meter: Meter,
        day: date,
        keep_until: date,
    ) -> None:
        """One day: its readable files and rows in, its daily values stored; on
        ``keep_until`` the checkpoint is saved."""
        tenant = sub.subscription_id
        manifests = [m for m in self.store.manifests(tenant, day, day) if m.status == "ok"]
        versions = {m.ref.key: m.version for m in manifests}
        rows = list(self.store.rows(tenant, day, versions))
        run.rows += len(rows)
        meter.add([m.ref for m in manifests], rows)
        del rows
        self.store.put_daily(tenant, meter.advance(day, run.first_new))
        run.days += 1
        if day <= keep_until:
            fresh = run.started - self.margin
            run.folded += [_file(m) for m in manifests if m.ingested_at > fresh]
        if day == keep_until:
            meter.compact()
            key = f"{CHECKPOINT_PREFIX}{tenant}/{keep_until}.state"
            self.objects.put(self.state_bucket, key, meter.dumps())
            state.checkpoint_key = key
            self._freeze(state, keep_until, run.started, run.folded)
        run.next_day = day + timedelta(days=1)

    def _save_progress(self, state: TenantState, run: RunProgress, meter: Meter) -> None:
        meter.compact()
        key = f"{CHECKPOINT_PREFIX}{state.tenant}/run-{run.as_of}.state"
        self.objects.put(self.state_bucket, key, meter.dumps())
        run.state_key = key
        state.run = run
        self.store.put_state(state)

    def _finish(
        self, sub: Subscription, state: TenantState, run: RunProgress, meter: Meter
    ) -> RunResult:
        tenant, as_of = sub.subscription_id, run.as_of
        meter.compact()
        # a key per day: a run that fails after this write leaves the named head intact,
        # and the head of a day becomes the checkpoint late_data_days later (_promote)
        self.objects.put(self.state_bucket, _head_key(tenant, as_of), meter.dumps())
        state.heads[as_of] = Head(run.started, run.base)
        if state.checkpoint_day:
            state.heads = {d: h for d, h in state.heads.items() if d > state.checkpoint_day}
        result = RunResult(tenant, "metered", as_of, run.days, run.rows)
        result.checkpoint_day = state.checkpoint_day
        alerts = self._late_files(sub, run.late_basis)
        self._publish(sub, meter, state, run.first_new, as_of, alerts, result)
        state.newest_metered = max(as_of, state.newest_metered or as_of)
        state.last_run_at = max(run.started, state.last_run_at or run.started)
        gone = self._stale_states(state, run)
        state.run = None
        self.store.put_state(state)
        for key in gone:  # no longer named by the state: a crash before leaves them to expire
            self.objects.delete(self.state_bucket, key)
        return result

    def _stale_states(self, state: TenantState, run: RunProgress) -> list[str]:
        """Stored states the tenant state no longer names: the run's progress, heads of days
        the checkpoint holds, checkpoints it replaced."""
        tenant = state.tenant
        named = {state.checkpoint_key, *(_head_key(tenant, d) for d in state.heads)}
        stale = {run.state_key} if run.state_key else set()
        if run.base:
            stale |= {_head_key(tenant, run.base), f"{CHECKPOINT_PREFIX}{tenant}/{run.base}.state"}
        return sorted(k for k in stale - named if k)

    def _late_files(
        self, sub: Subscription, basis: tuple[date | None, datetime | None, list[str]]
    ) -> list[dict[str, Any]]:
        """Files for days the checkpoint held when the run began, arrived after it (and not
        folded in): kept, reported, not applied."""
        checkpoint, at, folded = basis
        if checkpoint is None or at is None:
            return []
        window_start = rolling_start(sub.start_date, checkpoint)
        return [
            {
                "type": "late_file_ignored",
                "path": m.ref.key,
                "day": m.ref.day.isoformat(),
                "ingested_at": m.ingested_at.isoformat(),
            }
            for m in self.store.manifests(sub.subscription_id, window_start, checkpoint)
            if m.ingested_at > at and _file(m) not in folded
        ]

    def _publish(
        self,
        sub: Subscription,
        meter: Meter,
        state: TenantState,
        first_new: date,
        as_of: date,
        alerts: list[dict[str, Any]],
        result: RunResult,
    ) -> None:
        """Summarize the days ``publishing`` names and send what it decides for each; the
        levels in force (thresholds, plan caps, missing sources, projected thresholds) move
        with the newest day metered."""
        tenant = sub.subscription_id
        published = self.store.published(tenant, rolling_start(sub.start_date, as_of), as_of)
        for day, record in sorted(published.items()):
            if record.pending:
                published[day] = self._settle(tenant, record, result)
        days = publishing.days_to_summarize(sub.start_date, as_of, first_new, published)
        lowest = min(first_needed_day(sub, code, d) for d in days for code in sub.products)
        lowest = min(lowest, lookback_start(days[0]))  # the forecast's trend
        stored = self.store.daily(tenant, sub.products, lowest, as_of)
        for day in days:
            metering = metering_as_of(sub, day, stored, meter)
            summary = build_summary(
                sub,
                metering,
                generated_at=self.clock(),
                extra_alerts=alerts if day == as_of else (),
            )
            crossed = False
            if day == as_of:
                full = summary_alerts(sub, metering, summary["forecast"], alerts)
                self._full_alerts(tenant, summary, full)
                crossed = publishing.level_crossed(
                    summary["alerts"],
                    state.thresholds,
                    state.plan_levels,
                    state.missing_sources,
                    state.forecast,
                )
                if as_of >= (state.newest_metered or as_of):
                    state.thresholds, state.plan_levels = publishing.levels(summary["alerts"])
                    state.missing_sources = publishing.missing_sources(summary["alerts"])
                    state.forecast = publishing.projected(summary["alerts"])
                result.total_qlus = summary["total_qlus"]
                result.qlus = {p["product"]: p["qlus"] for p in summary["products"]}
            last = published.get(day)
            numbers = publishing.digest(summary)
            out = publishing.outgoing(
                last,
                numbers,
                as_of_day=day == as_of,
                closes=publishing.closes_interval(sub.start_date, day, as_of),
                crossed=crossed,
            )
            record = Published(day, out.revision, numbers, sorted(last.events if last else []))
            held = last  # the record as stored
            for event in out.events:
                summary.update(event_type=event, revision=out.revision)
                record = held = self._send(tenant, record, held, event, dict(summary), result)

    def _send(
        self,
        tenant: str,
        record: Published,
        stored: Published | None,
        event: UsageEvent,
        message: dict[str, Any],
        result: RunResult,
    ) -> Published:
        """Publish one message once: recorded as pending before the topic sees it and as
        sent after; a refusal is recorded as not sent (the retry sends it at once). A run
        that dies in between leaves it pending for ``_settle``. Each write expects the
        record as this run last read or wrote it: a concurrent run makes it fail
        (``Conflict``) before anything is published twice."""
        try:
            message = publishing.fit(message, event, tenant)
        except publishing.MessageTooLarge as exc:
            return self._refused(tenant, record, stored, event, message, str(exc), result)
        sending = Pending(event, record.revision, message, self.clock())
        pending = self.store.put_published(tenant, replace(record, pending=sending), stored)
        try:
            self.publisher.publish(message, event, tenant)
        except PublishRejected as exc:
            if exc.permanent:
                return self._refused(tenant, record, pending, event, message, str(exc), result)
            refused = replace(record, pending=replace(sending, since=None))
            self.store.put_published(tenant, refused, pending)
            raise
        sent = self.store.put_published(tenant, _sent(record, event), pending)
        result.published.append((event, record.as_of.isoformat(), record.revision))
        return sent

    def _refused(
        self,
        tenant: str,
        record: Published,
        stored: Published | None,
        event: UsageEvent,
        message: dict[str, Any],
        reason: str,
        result: RunResult,
    ) -> Published:
        """A message the topic would refuse whatever the retry: kept under
        ``MESSAGES_PREFIX`` with the reason, told to the operator (``result.refused``), and
        recorded as done so that it blocks no later run."""
        key = f"{MESSAGES_PREFIX}{tenant}/{record.as_of}/refused-{event}-r{record.revision}.json"
        body = {"reason": reason, "event_type": event, "message": message}
        self.objects.put(self.state_bucket, key, json.dumps(body).encode())
        result.refused.append(f"{event} of {record.as_of}: {reason}; kept as {key}")
        return self.store.put_published(tenant, _sent(record, event), stored)

    def _full_alerts(self, tenant: str, summary: dict[str, Any], alerts: list[Any]) -> None:
        """When the summary carries an alert kind bounded, the full list is stored beside
        the messages and each bounded entry names it (``full_list``)."""
        if not overflowing(alerts):
            return
        key = f"{MESSAGES_PREFIX}{tenant}/{summary['as_of']}/alerts.json"
        self.objects.put(self.state_bucket, key, json.dumps(alerts).encode())
        for alert in summary["alerts"]:
            if "first_day" in alert and "sample" in alert:
                alert["full_list"] = f"s3://{self.state_bucket}/{key}"

    def _settle(self, tenant: str, record: Published, result: RunResult) -> Published:
        """The message a failed run left pending: sent if the ledger received it; else sent
        again if the topic refused it or ``CONFIRM_AFTER`` has passed since it was handed
        over; otherwise the run waits (raises) for the receipt."""
        pending = record.pending
        assert pending is not None
        base = replace(record, pending=None)
        if (pending.event, pending.revision) in self.store.receipts(tenant, record.as_of):
            return self.store.put_published(tenant, _sent(record, pending.event), record)
        if pending.since is not None and self.clock() - pending.since < CONFIRM_AFTER:
            raise AwaitingReceipt(
                f"{pending.event} of {record.as_of} (revision {pending.revision}) was "
                f"handed to the topic at {pending.since.isoformat()} and has no receipt yet"
            )
        return self._send(tenant, base, record, pending.event, pending.message, result)


def _sent(record: Published, event: UsageEvent) -> Published:
    """The record with ``event`` gone out (or settled for good) and nothing pending."""
    return replace(record, events=sorted({*record.events, event}), pending=None)


def newest_head(state: TenantState, as_of: date, keep_until: date, start: date) -> date | None:
    """The head a run as of ``as_of`` may start from if it holds: the newest, when it lies
    between the checkpoint and ``as_of`` and the checkpoint need not move to
    ``keep_until`` (then the run replays from the checkpoint, not from the head)."""
    due = keep_until >= start and (
        state.checkpoint_day is None or state.checkpoint_day < keep_until
    )  # the checkpoint must move
    head = max(state.heads, default=None)  # the newest head
    if head and not due and (state.checkpoint_day or head) <= head <= as_of:
        return head
    return None


def holds(state: TenantState, head: Head, manifests: list[Manifest], margin: timedelta) -> bool:
    """Whether a head has every file it should: none of ``manifests`` (of the days after the
    checkpoint it was computed on, up to its day) arrived after it was saved (files the
    checkpoint reports as too late aside). Arrivals are compared ``margin`` early: a
    manifest can be read a little after the time it carries."""
    saved = head.saved - margin
    return not any(m.ingested_at > saved and not _too_late(state, m) for m in manifests)


def _head_key(tenant: str, day: date) -> str:
    return f"{CHECKPOINT_PREFIX}{tenant}/head-{day}.state"


def _file(manifest: Manifest) -> str:
    return f"{manifest.ref.key}#{manifest.version}"


def _too_late(state: TenantState, manifest: Manifest) -> bool:
    """A file for a day the checkpoint holds that arrived after it (and was not folded in
    after all): reported, not applied."""
    return bool(
        state.checkpoint_day
        and state.checkpoint_at
        and manifest.ref.day <= state.checkpoint_day
        and manifest.ingested_at > state.checkpoint_at
        and _file(manifest) not in state.checkpoint_files
    )
