"""The live tests' error window (tests/live/load.py): what a fault test asserts on must be measured
right, so it is checked here on made-up samples."""

from live.load import Load, Sample


def load_of(*samples: Sample) -> Load:
    load = Load(send=lambda: (200, ""), rate=10, threads=1)
    load.samples.extend(samples)
    return load


def test_a_window_runs_from_the_first_failure_to_the_sending_of_the_next_success():
    load = load_of(Sample(1.0, True, 200, "", sent=0.9), Sample(2.0, False, 0, "", sent=1.9),
                   Sample(2.5, False, 502, "edge", sent=2.1),
                   Sample(6.0, True, 200, "", sent=3.0),  # sent at 3.0, answered slowly
                   Sample(7.0, False, 0, "", sent=6.9), Sample(7.4, True, 200, "", sent=7.3))
    assert load.longest_error_window() == 1.0  # 2.0 -> 3.0, not 2.0 -> 6.0


def test_a_success_sent_before_the_failure_came_back_closes_the_window_at_zero():
    load = load_of(Sample(2.0, False, 0, "", sent=1.0), Sample(2.1, True, 200, "", sent=1.5))
    assert load.longest_error_window() == 0.0


def test_a_streak_still_open_at_the_end_runs_to_the_last_sample():
    load = load_of(Sample(1.0, True, 200, "", sent=0.9), Sample(2.0, False, 0, "", sent=1.9),
                   Sample(4.5, False, 0, "", sent=4.4))
    assert load.longest_error_window() == 2.5


def test_resolution_is_the_gap_between_two_requests():
    load = load_of(*(Sample(t / 4, True, 200, "", sent=t / 4) for t in range(9)))
    assert load.resolution() == 0.25
