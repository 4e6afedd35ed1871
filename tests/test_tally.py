"""The hot-path tallies export exactly what prometheus_client's Counter and Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from router.observe.tally import TallyCounter, TallyHistogram


def exported(registry: CollectorRegistry) -> set[str]:
    """Sample lines, without the `_created` timestamps only prometheus_client's own metrics have."""
    return {line for line in generate_latest(registry).decode().splitlines() if "_created" not in line}


def test_tallies_match_prometheus_client_sample_for_sample() -> None:
    ours, theirs = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    counter = TallyCounter("toolmesh_x", "Things.", ["method", "outcome"], ours)
    histogram = TallyHistogram("toolmesh_x_seconds", "Time.", ["method"], (0.001, 0.01, 1), ours)
    reference_counter = Counter("toolmesh_x", "Things.", ["method", "outcome"], registry=theirs)
    reference_histogram = Histogram(
        "toolmesh_x_seconds", "Time.", ["method"], buckets=(0.001, 0.01, 1), registry=theirs
    )
    # on a bound, between bounds, past the last bound; two label sets
    for method, seconds in [("a", 0.0005), ("a", 0.001), ("a", 0.005), ("b", 0.5), ("a", 2.0)]:
        counter.inc((method, "ok"))
        histogram.observe((method,), seconds)
        reference_counter.labels(method, "ok").inc()
        reference_histogram.labels(method).observe(seconds)
    assert exported(ours) == exported(theirs)
    assert 'toolmesh_x_seconds_bucket{le="0.001",method="a"} 2.0' in exported(ours)
