"""Daily windows: the per-request check at epoch milliseconds agrees with the calendar one."""
from datetime import datetime

from hypothesis import given, settings, strategies as st

from hongyan.domain import windows

seconds_of_day = st.integers(0, windows.DAY_S)
# 2001 to 2060, to the millisecond.
instants = st.integers(978_307_200_000, 2_871_763_200_000)


@settings(max_examples=500)
@given(seconds_of_day, seconds_of_day, st.lists(instants, min_size=1, max_size=5))
def test_is_open_at_agrees_with_is_open_at_the_local_time(start, end, times):
    window = (start, end)
    for ms in times:
        at = datetime.fromtimestamp(ms / 1000)
        assert windows.is_open_at(window, ms) == windows.is_open(window, at), (window, at)


def test_windows_open_close_and_wrap_past_midnight():
    day = windows.parse_hours("08:30-21:00")
    night = windows.parse_hours("21-08")
    assert windows.is_open(night, datetime(2026, 12, 2, 7, 59, 59))
    assert not windows.is_open(night, datetime(2026, 12, 2, 8, 0))
    assert not windows.is_open(day, datetime(2026, 12, 2, 8, 29, 59))
    assert windows.is_open(day, datetime(2026, 12, 2, 8, 30))
    assert windows.is_open(night, datetime(2026, 12, 2, 21, 0))
    assert windows.is_open(windows.parse_hours("00:00-24:00"), datetime(2026, 12, 2, 23, 59, 59))
    ms = int(datetime(2026, 12, 2, 20, 59, 59).timestamp() * 1000)
    assert windows.is_open_at(day, ms) and not windows.is_open_at(day, ms + 1000)
