"""The flow's arithmetic: how many jobs to hold, and how many threads take jobs."""

from __future__ import annotations

from sidequest.worker.flow import FIRST_WINDOW, FLOOR, HOLD, START, WINDOW, Flow


class Clocks:
    """A wall clock and a process CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def window(self, busy: float) -> None:
        length = WINDOW * 1.25  # a little over: sums of 0.1 s drift below whole windows
        self.wall += length
        self.cpu += busy * length


def flow(concurrency: int = 10, prefetch: int = 40, adaptive: bool = True) -> tuple[Flow, Clocks]:
    """A flow whose windows have opened (jobs were fetched)."""
    clocks = Clocks()
    made = Flow(concurrency, prefetch, adaptive, clock=lambda: clocks.wall,
                cpu=lambda: clocks.cpu)
    made.open()  # the first jobs were fetched
    return made, clocks


def run_window(made: Flow, clocks: Clocks, jobs: int, busy: float) -> bool:
    clocks.window(busy)
    return made.observe(jobs)


def test_nothing_changes_inside_a_window() -> None:
    made, clocks = flow()
    clocks.wall += FIRST_WINDOW / 2
    assert made.observe(500) is False
    assert made.active == 10 and made.buffer == 10


def test_before_any_rate_the_buffer_holds_one_job_per_thread() -> None:
    assert Flow(10, 100).buffer == 10
    assert Flow(10, 4).buffer == 4, "never more than prefetch"
    assert Flow(10, 0).buffer == 0, "prefetch 0: fetch only for a free thread"


def test_buffer_holds_what_the_threads_finish_while_a_round_trip_is_out() -> None:
    made, clocks = flow(prefetch=1000)
    made.round_trip(0.01)  # moving average: 2 ms
    run_window(made, clocks, jobs=125, busy=0.1)  # 1,000 jobs/s
    assert made.buffer == int(1000 * max(2 * made.rtt, HOLD))
    run_window(made, clocks, jobs=25, busy=0.1)  # 200 jobs/s: the rate comes down gently
    assert made.buffer == int(600 * max(2 * made.rtt, HOLD))
    made, clocks = flow(prefetch=5)
    run_window(made, clocks, jobs=10_000, busy=0.1)
    assert made.buffer == 5, "never more than prefetch"


def test_slow_jobs_get_no_buffer() -> None:
    made, clocks = flow()
    run_window(made, clocks, jobs=1, busy=0.01)  # 8 jobs/s
    assert made.buffer == 0


def test_waiting_jobs_keep_every_thread() -> None:
    made, clocks = flow()
    for _ in range(20):
        run_window(made, clocks, jobs=500, busy=0.2)
        assert made.active == 10


def test_compute_bound_jobs_start_from_a_few_threads_and_add_them_while_that_helps() -> None:
    made, clocks = flow()
    run_window(made, clocks, jobs=1000, busy=1.0)
    assert made.active == START  # at once, not one thread a window
    rate = 1000
    for expected in (START + 1, START + 2, START + 3):
        rate += 50  # each thread more finishes more
        run_window(made, clocks, jobs=rate, busy=1.0)
        assert made.active == expected


def test_the_climb_turns_back_when_the_rate_falls() -> None:
    made, clocks = flow()
    run_window(made, clocks, jobs=1000, busy=1.0)  # busy: down to START
    run_window(made, clocks, jobs=1000, busy=1.0)  # the first rate at START: step up
    assert made.active == START + 1
    run_window(made, clocks, jobs=900, busy=1.0)  # worse with one more: back down
    assert made.active == START
    run_window(made, clocks, jobs=950, busy=1.0)  # better again: keep going down
    assert made.active == START - 1


def test_one_thread_when_fewer_threads_finish_more() -> None:
    # Jobs whose own round trips make a second thread only add lock hand-offs: each thread
    # fewer finishes more, and the climb settles on one (then tries two again, and back).
    made, clocks = flow()
    rates = {1: 1200, 2: 1100, 3: 1000}
    run_window(made, clocks, jobs=1000, busy=1.0)
    seen = []
    for _ in range(8):
        run_window(made, clocks, jobs=rates.get(made.active, 900), busy=1.0)
        seen.append(made.active)
    assert FLOOR == 1 and 1 in seen and max(seen) <= 3, seen


def test_never_fewer_than_the_floor_nor_more_than_concurrency() -> None:
    made, clocks = flow(concurrency=6)
    for i in range(30):
        run_window(made, clocks, jobs=1000 + 10 * i, busy=1.0)  # always better: up
        assert FLOOR <= made.active <= 6
    assert made.active == 6
    for i in range(30):
        run_window(made, clocks, jobs=1000 - 10 * i, busy=1.0)  # always worse: turns
        assert FLOOR <= made.active <= 6


def test_jobs_that_start_waiting_get_every_thread_back_at_once() -> None:
    made, clocks = flow()
    for i in range(5):
        run_window(made, clocks, jobs=1000 + 50 * i, busy=1.0)
    assert made.active < 10
    run_window(made, clocks, jobs=300, busy=0.1)
    assert made.active == 10


def test_too_few_jobs_in_a_window_is_not_a_measurement() -> None:
    made, clocks = flow()
    run_window(made, clocks, jobs=1000, busy=1.0)
    assert made.active == START
    run_window(made, clocks, jobs=3, busy=1.0)  # one long computation, say
    assert made.active == 10


def test_off_switch_and_tiny_pools_keep_every_thread() -> None:
    made, clocks = flow(adaptive=False)
    small, small_clocks = flow(concurrency=FLOOR)
    for i in range(10):
        run_window(made, clocks, jobs=1000 + 50 * i, busy=1.0)
        run_window(small, small_clocks, jobs=1000 + 50 * i, busy=1.0)
        assert made.active == 10 and small.active == FLOOR


def test_windows_open_at_the_first_fetched_jobs_and_the_first_is_short() -> None:
    clocks = Clocks()
    made = Flow(10, 1000, clock=lambda: clocks.wall, cpu=lambda: clocks.cpu)
    made.round_trip(0.005)
    clocks.wall += 5.0  # starting up, then idle: no window is measured
    clocks.cpu += 1.0
    assert made.observe(3) is False  # processors idle at the start: nothing measured
    made.open()  # the first jobs were fetched
    opened = clocks.wall
    clocks.wall += FIRST_WINDOW / 2
    assert made.observe(100) is False
    clocks.wall += FIRST_WINDOW
    assert made.observe(50) is True
    rate = 150 / (clocks.wall - opened)  # not 150 jobs over the 5 s of start-up
    assert made.buffer == int(rate * max(2 * made.rtt, HOLD))
    assert made.active == 10, "the start-up's CPU time is not the jobs'"
    clocks.wall += FIRST_WINDOW * 1.5
    assert made.observe(50) is False, "later windows are WINDOW long"
    clocks.wall += WINDOW
    assert made.observe(50) is True


def test_threads_that_ran_out_double_the_buffer_up_to_prefetch() -> None:
    made = Flow(10, 100)
    sizes = []
    for _ in range(5):
        made.starved()
        sizes.append(made.buffer)
    assert sizes == [20, 40, 80, 100, 100]
    none = Flow(10, 0)
    none.starved()
    assert none.buffer == 0, "prefetch 0 holds nothing"


def test_a_window_that_starved_keeps_the_doubled_buffer_and_the_next_resizes_it() -> None:
    made, clocks = flow(prefetch=1000)
    made.round_trip(0.01)
    made.starved()
    made.starved()
    assert made.buffer == 40
    sized = int(800 * max(2 * made.rtt, HOLD))  # 16
    run_window(made, clocks, jobs=100, busy=0.1)  # 800 jobs/s
    assert made.buffer == 40 > sized, "that rate was held down by the buffer"
    run_window(made, clocks, jobs=100, busy=0.1)  # no thread ran out this time
    assert made.buffer == sized


def test_slow_jobs_keep_an_empty_buffer_when_threads_wait() -> None:
    made, clocks = flow()
    run_window(made, clocks, jobs=1, busy=0.01)
    assert made.buffer == 0
    made.starved()
    assert made.buffer == 0
