"""OrderedWorker: calls run in order on one thread, failures surface, queued work is finished."""

import threading
import time

import pytest

from cryptopipe_dagster.lib.historical.overlap import OrderedWorker


def test_calls_run_in_submission_order_off_the_calling_thread():
    seen: list[tuple[int, bool]] = []
    with OrderedWorker(depth=2) as worker:
        for i in range(20):
            worker.submit(
                lambda i=i: (
                    time.sleep(0.001 * (i % 3)),
                    seen.append((i, threading.current_thread() is threading.main_thread())),
                )
            )
    assert [i for i, _ in seen] == list(range(20))
    assert not any(on_main for _, on_main in seen)


def test_a_failed_call_is_raised_to_the_caller():
    def fail() -> None:
        raise ValueError("load failed")

    with pytest.raises(ValueError, match="load failed"), OrderedWorker() as worker:
        worker.submit(fail)
        for _ in range(5):
            worker.submit(time.sleep, 0.01)


def test_queued_loads_finish_when_the_fetch_fails():
    done: list[int] = []
    with pytest.raises(RuntimeError, match="fetch failed"), OrderedWorker(depth=3) as worker:
        worker.submit(lambda: (time.sleep(0.05), done.append(1)))
        worker.submit(lambda: (time.sleep(0.05), done.append(2)))
        raise RuntimeError("fetch failed")
    assert done == [1, 2]


@pytest.mark.parametrize("inline", [False, True])
def test_busy_time_counts_every_call_and_inline_runs_on_the_calling_thread(inline):
    threads: list[bool] = []
    with OrderedWorker(inline=inline) as worker:
        for _ in range(4):
            worker.submit(
                lambda: (
                    time.sleep(0.02),
                    threads.append(threading.current_thread() is threading.main_thread()),
                )
            )
    assert threads == [inline] * 4
    assert 0.08 <= worker.busy_s < 5  # the sleeps, measured where they ran


def test_an_inline_failure_is_raised_at_submit():
    def fail() -> None:
        raise ValueError("load failed")

    with OrderedWorker(inline=True) as worker, pytest.raises(ValueError, match="load failed"):
        worker.submit(fail)
    assert worker.busy_s >= 0
