"""One line out of a Ray report: what `critic serve` and `critic score --engine ray` print
when a replica or an actor fails (the real failures are in test_serve and test_cluster)."""

from critic.cluster import error_line, root_cause
from critic.serve.server import replica_error

REPORT = (
    "The deployment failed to start 1 time(s) in a row.\n"
    "\x1b[36mray::ServeReplica:critic:Predictor.initialize_and_get_metadata()\x1b[39m "
    "(pid=4242, ip=127.0.0.1)\n"
    "Traceback (most recent call last):\n"
    '  File "/site-packages/ray/serve/_private/replica.py", line 10, in initialize\n'
    "    raise RuntimeError: not this one\n"
    '  File "/site-packages/critic/bundle/format.py", line 99, in load_bundle\n'
    "critic.bundle.format.BundleError: /b: not a bundle directory (no bundle.json)\n"
)


def test_the_last_error_line_without_colours_or_module_path():
    assert error_line(REPORT) == "BundleError: /b: not a bundle directory (no bundle.json)"
    assert replica_error(REPORT) == "BundleError: /b: not a bundle directory (no bundle.json)"


def test_a_report_without_an_error_line():
    assert error_line("the replica was killed\n") is None
    assert replica_error("starting\nthe replica was killed\n") == "the replica was killed"
    assert replica_error("") == "unknown (see the Ray Serve controller log)"


class TaskError(Exception):
    """Stands for a Ray error: it names its cause in ``cause``, as Ray's errors do."""

    def __init__(self, text: str, cause: BaseException | None = None) -> None:
        super().__init__(text)
        self.cause = cause


def test_root_cause_is_the_innermost_error():
    inner = ValueError("shard 3: no column 'text'")
    outer = TaskError("ray::ScoreActor.score() failed\n" + REPORT, cause=inner)
    assert root_cause(outer) == "ValueError: shard 3: no column 'text'"


def test_root_cause_of_a_traceback_is_its_last_error_line():
    assert root_cause(TaskError(REPORT)) == (
        "BundleError: /b: not a bundle directory (no bundle.json)"
    )
    assert root_cause(TaskError("")) == "TaskError"
    assert root_cause(TaskError("The actor died unexpectedly")).startswith(
        "TaskError: The actor died"
    )
