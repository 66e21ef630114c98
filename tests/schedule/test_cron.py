"""Cron arithmetic: parsing, fire times in several zones, and the DST changes in both directions."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from previz.schedule.cron import CronError, parse_cron
from previz.schedule.spec import parse_deadline

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
TOKYO = ZoneInfo("Asia/Tokyo")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def fires_utc(expression: str, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    return [t.astimezone(UTC) for t in parse_cron(expression).fire_times(after, tz, count)]


def test_fields_names_ranges_steps_and_lists():
    schedule = parse_cron("0,30 */6 1-7 JAN-mar,12 mon-FRI")
    assert schedule.minutes == (0, 30)
    assert schedule.hours == (0, 6, 12, 18)
    assert schedule.days == frozenset(range(1, 8))
    assert schedule.months == frozenset({1, 2, 3, 12})
    assert schedule.weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})  # 7 is Sunday too
    assert parse_cron("5/20 * * * *").minutes == (5, 25, 45)  # a/n: from a to the end


@pytest.mark.parametrize("macro, expected", [
    ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"), ("@DAILY", "0 0 * * *"),
])
def test_macros(macro, expected):
    assert parse_cron(macro).canonical() == expected


def test_canonical_form_uses_numbers():
    assert parse_cron("30 19 * * MON-FRI").canonical() == "30 19 * * 1-5"
    assert parse_cron("*/15 0-23/2 * JAN,FEB SUN,7").canonical() == "*/15 */2 * 1,2 0"
    assert parse_cron("0 9 1,15 * *").canonical() == "0 9 1,15 * *"


@pytest.mark.parametrize("expression, message", [
    ("61 * * * *", "minute field '61': 61 is out of range 0-59"),
    ("0 24 * * *", "hour field '24': 24 is out of range 0-23"),
    ("* * *", "has 3 fields, not 5"),
    ("0 0 0 * * *", "drop the seconds"),
    ("0 0 * * FRX", "did you mean 'FRI'"),
    ("0 0 * * FRI-MON", "runs backwards"),
    ("*/0 * * * *", "the step after '/' must be a whole number"),
    ("0 0 30 2 *", "never fires"),
    ("@reboot", "not a schedule previz can run"),
    ("0 0 1,,2 * *", "empty list item"),
    ("0 0 * JANUARY *", "not a number 1-12 or a name JAN-DEC"),
])
def test_bad_expressions_say_what_is_wrong(expression, message):
    with pytest.raises(CronError) as error:
        parse_cron(expression)
    assert message in str(error.value)


def test_weeknight_schedule_in_london():
    # Friday evening: the next weeknight slot is Monday.
    assert fires_utc("30 19 * * MON-FRI", LONDON, utc(2025, 1, 10, 20), 2) == [
        utc(2025, 1, 13, 19, 30), utc(2025, 1, 14, 19, 30)]
    # In summer London is UTC+1.
    assert fires_utc("30 19 * * MON-FRI", LONDON, utc(2025, 7, 1), 1) == [utc(2025, 7, 1, 18, 30)]


def test_one_schedule_in_different_zones():
    after = utc(2025, 1, 15)
    assert fires_utc("0 9 * * *", TOKYO, after, 1) == [utc(2025, 1, 16, 0)]  # UTC+9
    assert fires_utc("0 9 * * *", NEW_YORK, after, 1) == [utc(2025, 1, 15, 14)]  # UTC-5
    assert fires_utc("0 9 * * *", ZoneInfo("UTC"), after, 1) == [utc(2025, 1, 15, 9)]


def test_spring_forward_fires_a_skipped_time_once_at_the_end_of_the_gap():
    # London, 30 March 2025: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist that night.
    fires = parse_cron("30 1 * * *").fire_times(utc(2025, 3, 28, 12), LONDON, 4)
    assert [t.astimezone(UTC) for t in fires] == [
        utc(2025, 3, 29, 1, 30), utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 30),
        utc(2025, 4, 1, 0, 30)]
    assert fires[1].strftime("%H:%M %Z") == "02:00 BST"


def test_several_skipped_times_collapse_into_one_firing():
    fires = fires_utc("0,15,30,45 1 * * *", LONDON, utc(2025, 3, 29, 23), 2)
    assert fires == [utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 0)]


def test_frequent_schedule_through_spring_forward():
    fires = fires_utc("*/20 * * * *", LONDON, utc(2025, 3, 30, 0, 30), 5)
    assert fires == [utc(2025, 3, 30, 0, 40), utc(2025, 3, 30, 1, 0), utc(2025, 3, 30, 1, 20),
                     utc(2025, 3, 30, 1, 40), utc(2025, 3, 30, 2, 0)]


def test_fall_back_fires_a_repeated_time_once_at_its_first_occurrence():
    # London, 26 October 2025: 02:00 BST falls back to 01:00 GMT; 01:30 happens twice.
    fires = fires_utc("30 1 * * *", LONDON, utc(2025, 10, 25, 12), 3)
    assert fires == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30), utc(2025, 10, 28, 1, 30)]


def test_frequent_schedule_pauses_through_the_repeated_hour():
    fires = fires_utc("*/20 * * * *", LONDON, utc(2025, 10, 26, 0, 10), 6)
    assert fires == [utc(2025, 10, 26, 0, 20), utc(2025, 10, 26, 0, 40), utc(2025, 10, 26, 2, 0),
                     utc(2025, 10, 26, 2, 20), utc(2025, 10, 26, 2, 40), utc(2025, 10, 26, 3, 0)]
    assert len(set(fires)) == len(fires)


def test_new_york_spring_forward():
    # 9 March 2025: 02:00 EST jumps to 03:00 EDT.
    assert fires_utc("30 2 * * *", NEW_YORK, utc(2025, 3, 8, 12), 2) == [
        utc(2025, 3, 9, 7, 0), utc(2025, 3, 10, 6, 30)]


def test_southern_hemisphere_changes():
    # Sydney: 6 April 2025 03:00 AEDT falls back to 02:00 AEST; 5 October 2025 02:00 AEST
    # jumps to 03:00 AEDT.
    assert fires_utc("30 2 * * *", SYDNEY, utc(2025, 4, 5, 0), 2) == [
        utc(2025, 4, 5, 15, 30), utc(2025, 4, 6, 16, 30)]
    assert fires_utc("30 2 * * *", SYDNEY, utc(2025, 10, 4, 0), 2) == [
        utc(2025, 10, 4, 16, 0), utc(2025, 10, 5, 15, 30)]


def test_half_hour_daylight_saving():
    # Lord Howe Island moves its clocks by 30 minutes: 5 October 2025 02:00 +10:30 -> 02:30 +11.
    fires = parse_cron("15 2 * * *").fire_times(utc(2025, 10, 4, 0), LORD_HOWE, 2)
    assert fires[0].astimezone(UTC) == utc(2025, 10, 4, 15, 30)
    assert fires[0].strftime("%H:%M") == "02:30"
    assert fires[1].astimezone(UTC) == utc(2025, 10, 5, 15, 15)


def test_previous_fire_time_and_slots():
    schedule = parse_cron("*/20 * * * *")
    # In the repeated hour's second pass, the latest slot is from its first pass.
    assert schedule.previous(utc(2025, 10, 26, 1, 10), LONDON).astimezone(UTC) == utc(
        2025, 10, 26, 0, 40)
    nightly = parse_cron("30 19 * * MON-FRI")
    assert nightly.previous(utc(2025, 1, 13, 19, 30), LONDON).astimezone(UTC) == utc(
        2025, 1, 13, 19, 30)  # at the fire time itself
    assert nightly.previous(utc(2025, 1, 13, 9), LONDON).astimezone(UTC) == utc(
        2025, 1, 10, 19, 30)  # Monday morning: Friday's slot
    assert nightly.is_fire_time(utc(2025, 1, 13, 19, 30), LONDON)
    assert not nightly.is_fire_time(utc(2025, 1, 13, 19, 31), LONDON)
    assert parse_cron("30 1 * * *").is_fire_time(utc(2025, 3, 30, 1, 0), LONDON)


def test_day_of_month_or_day_of_week():
    # Both restricted: either matches (the 13th, and every Friday).
    fires = [t.date().isoformat() for t in
             parse_cron("0 12 13 * FRI").fire_times(utc(2025, 6, 1), ZoneInfo("UTC"), 4)]
    assert fires == ["2025-06-06", "2025-06-13", "2025-06-20", "2025-06-27"]
    # One written with '*': both must match (odd days that are Mondays).
    fires = [t.date().isoformat() for t in
             parse_cron("0 12 */2 * MON").fire_times(utc(2025, 6, 1), ZoneInfo("UTC"), 2)]
    assert fires == ["2025-06-09", "2025-06-23"]


def test_leap_day_schedule():
    assert fires_utc("0 0 29 2 *", ZoneInfo("UTC"), utc(2025, 3, 1), 1) == [utc(2028, 2, 29)]


def test_deadlines_after_a_fire_time():
    fire = datetime(2025, 3, 29, 19, 30, tzinfo=LONDON)  # the night the clocks go forward
    deadline = parse_deadline("07:00").after(fire, LONDON)
    assert deadline.isoformat() == "2025-03-30T07:00:00+01:00"
    assert (deadline - fire.astimezone(UTC)).total_seconds() == 10.5 * 3600
    friday = datetime(2025, 1, 10, 20, 0, tzinfo=LONDON)
    assert parse_deadline("Mon 07:00").after(friday, LONDON).isoformat() == (
        "2025-01-13T07:00:00+00:00")
    early = datetime(2025, 1, 10, 2, 0, tzinfo=LONDON)
    assert parse_deadline("07:00").after(early, LONDON).isoformat() == "2025-01-10T07:00:00+00:00"


@pytest.mark.parametrize("value, message", [
    ("7am", "is not a time"), ("25:00", "hours run 00-23"), ("Mnd 07:00", "is not a day"),
    (1170, 'quote it: deadline: "19:30"'), (None, "is not a time"),
])
def test_bad_deadlines(value, message):
    with pytest.raises(ValueError) as error:
        parse_deadline(value)
    assert message in str(error.value)
