"""Cron schedules in a time zone: parse five fields, step through fire times, survive DST.

The language is Vixie cron's, the one crontab, systemd users, Kubernetes and KubeRay all read:

    minute hour day-of-month month day-of-week        30 19 * * MON-FRI
    *  a  a-b  a-b/n  */n  a/n (a to the end, every n)  lists with ','
    months JAN-DEC, days SUN-SAT (0 and 7 are Sunday); names are case-insensitive
    @yearly @annually @monthly @weekly @daily @midnight @hourly

When both day fields are restricted (neither starts with '*') a day matches if either does, as in
Vixie cron; otherwise both must.

Time zones and daylight saving (the semantics of Vixie cron and cronie for fixed-time jobs):

- A local time skipped when the clocks go forward fires once, at the first instant after the gap
  (a job at 01:30 in London on the last Sunday of March fires at 02:00 BST). Several skipped times
  collapse into that one firing, and a schedule that also fires at that instant fires once.
- A local time repeated when the clocks go back fires once, at its first occurrence. A schedule
  that fires every few minutes therefore pauses through the repeated hour instead of firing twice.

Fire times are returned as aware datetimes in the schedule's zone; two fire times are the same
slot exactly when they are the same instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

__all__ = ["CronError", "CronSchedule", "parse_cron", "MACROS"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 7, _DAYS),
)
# Eight years always hold every calendar day a schedule can name (29 February included).
_SEARCH_DAYS = 8 * 366
# No daylight-saving shift is larger than this; candidates are searched this far either side.
_MAX_SHIFT = timedelta(hours=3)


class CronError(ValueError):
    """A cron expression that does not parse; the message names the field and says the fix."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed five-field cron expression (no time zone: pass one to each query)."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_star: bool  # day-of-month written starting with '*'
    weekdays_star: bool

    # -- queries ---------------------------------------------------------------------------
    def next_after(self, after: datetime, tz: tzinfo) -> datetime:
        """The first fire time strictly after `after` (an aware datetime)."""
        _check_aware(after)
        start = _local(after, tz) - _MAX_SHIFT
        for local in self._forward(start):
            instant = _instant(local, tz)
            if instant > after:
                return instant.astimezone(tz)
        raise CronError(f"{self.expression!r} never fires")  # excluded when parsing

    def previous(self, at_or_before: datetime, tz: tzinfo) -> datetime:
        """The last fire time at or before `at_or_before` (an aware datetime)."""
        _check_aware(at_or_before)
        start = _local(at_or_before, tz) + _MAX_SHIFT
        # Instants never decrease as local candidates increase, so the first one found going
        # backwards that is not after the moment is the latest.
        for local in self._backward(start):
            instant = _instant(local, tz)
            if instant <= at_or_before:
                return instant.astimezone(tz)
        raise CronError(f"{self.expression!r} never fires")  # excluded when parsing

    def fire_times(self, after: datetime, tz: tzinfo, count: int) -> list[datetime]:
        """The next `count` fire times strictly after `after`."""
        times: list[datetime] = []
        moment = after
        for _ in range(count):
            moment = self.next_after(moment, tz)
            times.append(moment)
        return times

    def is_fire_time(self, moment: datetime, tz: tzinfo) -> bool:
        """True when `moment` is exactly one of this schedule's fire instants."""
        _check_aware(moment)
        # Compared in UTC: aware times sharing a tzinfo compare as wall clocks, folds ignored.
        return self.previous(moment, tz).astimezone(timezone.utc) == moment.astimezone(
            timezone.utc)

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return in_month and in_week
        return in_month or in_week

    # -- writing ---------------------------------------------------------------------------
    def canonical(self) -> str:
        """The expression in plain numbers (no names, no macros, Sunday as 0)."""
        fields = (
            (set(self.minutes), _FIELDS[0], True),
            (set(self.hours), _FIELDS[1], True),
            (set(self.days), _FIELDS[2], self.days_star),
            (set(self.months), _FIELDS[3], True),
            (set(self.weekdays), _Field("day-of-week", 0, 6), self.weekdays_star),
        )
        return " ".join(_compact(values, field, star) for values, field, star in fields)

    # -- candidates: matching local wall-clock minutes in order ------------------------------
    def _forward(self, start: datetime) -> Iterator[datetime]:
        start = start.replace(second=0, microsecond=0)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self.matches_day(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        local = datetime.combine(day, time(hour, minute))
                        if local >= start:
                            yield local
            day += timedelta(days=1)

    def _backward(self, start: datetime) -> Iterator[datetime]:
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self.matches_day(day):
                for hour in reversed(self.hours):
                    for minute in reversed(self.minutes):
                        local = datetime.combine(day, time(hour, minute))
                        if local <= start:
                            yield local
            day -= timedelta(days=1)


def parse_cron(text: str) -> CronSchedule:
    """Parse a five-field expression or macro. Raises CronError naming the field and the fix."""
    if not isinstance(text, str):
        raise CronError(f"{text!r} is not a cron expression — write five fields such as "
                        "\"30 19 * * MON-FRI\" (in quotes)")
    written = text.strip()
    expression = MACROS.get(written.lower(), written) if written.startswith("@") else written
    if expression.startswith("@"):
        raise CronError(f"{written!r} is not a schedule previz can run — use five fields or one "
                        f"of {', '.join(MACROS)}")
    parts = expression.split()
    if len(parts) != 5:
        hint = (" — previz schedules to the minute; drop the seconds (or year) field"
                if len(parts) in (6, 7) else "")
        raise CronError(
            f"{written!r} has {len(parts)} field{'s' if len(parts) != 1 else ''}, not 5 "
            f"(minute hour day-of-month month day-of-week){hint or ', such as 30 19 * * MON-FRI'}"
        )
    values = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(0 if day == 7 else day for day in values[4])
    schedule = CronSchedule(
        expression=written,
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=frozenset(values[2]),
        months=frozenset(values[3]),
        weekdays=weekdays,
        days_star=parts[2].startswith("*"),
        weekdays_star=parts[4].startswith("*"),
    )
    if not _fires_at_all(schedule):
        raise CronError(f"{written!r} never fires: no month has day "
                        f"{_compact(set(values[2]), _FIELDS[2], False)} in "
                        f"{_compact(set(values[3]), _FIELDS[3], False)} — check the day and "
                        "month")
    return schedule


# -- parsing ---------------------------------------------------------------------------------
def _parse_field(text: str, field: _Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name} field {text!r} has an empty list item — remove the "
                            "extra ','")
        values |= _parse_item(item, field)
    return values


def _parse_item(item: str, field: _Field) -> set[int]:
    span, _, step_text = item.partition("/")
    step = 1
    if step_text or item.endswith("/"):
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{field.name} field {item!r}: the step after '/' must be a whole "
                            f"number from 1 to {field.high - field.low + 1}")
        step = int(step_text)
    if span == "*":
        low, high = field.low, field.high if field.name != "day-of-week" else 6
    elif "-" in span:
        first, _, last = span.partition("-")
        low, high = _value(first, field, item), _value(last, field, item)
        if low > high:
            raise CronError(
                f"{field.name} field {item!r} runs backwards — write it low to high, or as two "
                f"ranges such as {low}-{6 if field.name == 'day-of-week' else field.high},"
                f"{field.low}-{high}"
            )
    else:
        low = _value(span, field, item)
        high = (field.high if field.name != "day-of-week" else 6) if step_text else low
    return set(range(low, high + 1, step))


def _value(text: str, field: _Field, item: str) -> int:
    upper = text.strip().upper()
    if upper in field.names:
        return field.low + field.names.index(upper)
    if text.isdigit():
        number = int(text)
        if field.low <= number <= field.high:
            return number
        raise CronError(f"{field.name} field {item!r}: {number} is out of range "
                        f"{field.low}-{field.high}")
    names = f" or a name {field.names[0]}-{field.names[-1]}" if field.names else ""
    from previz.storyboard.errors import did_you_mean

    raise CronError(f"{field.name} field {item!r}: {text!r} is not a number "
                    f"{field.low}-{field.high}{names}{did_you_mean(upper, field.names)}")


def _compact(values: set[int], field: _Field, star: bool) -> str:
    full = set(range(field.low, field.high + 1))
    if star and values == full:
        return "*"
    ordered = sorted(values)
    if star and len(ordered) > 1:
        step = ordered[1] - ordered[0]
        if ordered[0] == field.low and ordered == list(range(field.low, field.high + 1, step)):
            return f"*/{step}"
    runs: list[str] = []
    start = previous = ordered[0]
    for value in ordered[1:] + [None]:  # type: ignore[list-item]
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(str(start) if start == previous else
                    f"{start},{previous}" if previous == start + 1 else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(runs)


def _fires_at_all(schedule: CronSchedule) -> bool:
    day = date(2000, 1, 1)  # eight years from a leap year see every day of every month
    for _ in range(_SEARCH_DAYS):
        if schedule.matches_day(day):
            return True
        day += timedelta(days=1)
    return False


# -- time zones ------------------------------------------------------------------------------
def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone — pass an aware datetime")


def _local(moment: datetime, tz: tzinfo) -> datetime:
    """Naive local wall-clock time of an instant."""
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)


def _instant(local: datetime, tz: tzinfo) -> datetime:
    """The UTC instant a local wall time fires at: its first occurrence, or the end of a gap."""
    first = local.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
    if first.astimezone(tz).replace(tzinfo=None, fold=0) == local:
        return first
    return _gap_end(local, tz)


def _gap_end(local: datetime, tz: tzinfo) -> datetime:
    """First instant after the clocks jumped over `local` (a wall time that does not exist)."""
    before = local.replace(tzinfo=tz, fold=1).astimezone(timezone.utc)  # offset after the jump
    after = local.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)  # offset before the jump
    low, high = min(before, after), max(before, after)
    target = high.astimezone(tz).utcoffset()
    # The offset changes once between low and high; find the first second that has the new one.
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        middle = (lo + hi) // 2
        if (low + timedelta(seconds=middle)).astimezone(tz).utcoffset() == target:
            hi = middle
        else:
            lo = middle + 1
    return low + timedelta(seconds=lo)
