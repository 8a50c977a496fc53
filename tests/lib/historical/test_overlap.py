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
