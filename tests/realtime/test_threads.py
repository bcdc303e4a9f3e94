"""The thread policy: auto never oversubscribes, explicit numbers are used as given, config accepts auto or ints."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from realtime.config import RuntimeConfig, load_config
from realtime.errors import ConfigError
from realtime.threads import available_cores, plan_threads, set_blas_threads, blas_threads


@given(cores=st.integers(1, 128), branches=st.integers(1, 4))
def test_auto_never_oversubscribes_and_uses_the_cores(cores, branches):
    plan = plan_threads(RuntimeConfig(), cores=cores, branches=branches)
    assert plan.workers == min(cores, branches)
    assert plan.workers * plan.intra_op <= cores
    assert not plan.oversubscribed
    # nothing idles that a share could use: one more thread per session would oversubscribe
    assert plan.workers * (plan.intra_op + 1) > cores
    assert plan.opencv == plan.intra_op and plan.blas == 1
    assert plan.in_flight == plan.workers
    assert plan.explicit == ()


def test_two_cores_two_branches_is_two_single_thread_workers_without_spinning():
    plan = plan_threads(RuntimeConfig(), cores=2, branches=2)
    assert (plan.workers, plan.intra_op, plan.opencv, plan.blas) == (2, 1, 1, 1)
    assert plan.allow_spinning is False
    one = plan_threads(RuntimeConfig(), cores=2, branches=1)
    assert (one.workers, one.intra_op) == (1, 2) and one.allow_spinning is True
    big = plan_threads(RuntimeConfig(), cores=16, branches=2)
    assert (big.workers, big.intra_op, big.opencv) == (2, 8, 8)


def test_explicit_numbers_are_used_and_oversubscription_is_reported():
    naive = RuntimeConfig(workers=1, intra_op_threads=1, opencv_threads=1, blas_threads=1, frames_in_flight=1)
    plan = plan_threads(naive, cores=8, branches=2)
    assert (plan.workers, plan.intra_op, plan.opencv, plan.blas, plan.in_flight) == (1, 1, 1, 1, 1)
    assert set(plan.explicit) == {"workers", "intra_op", "opencv", "blas", "in_flight"}
    assert not plan.oversubscribed
    greedy = plan_threads(RuntimeConfig(workers=2, intra_op_threads=2), cores=2, branches=2)
    assert greedy.peak_compute_threads == 4 and greedy.oversubscribed
    assert "OVERSUBSCRIBED" in greedy.describe()
    ort_default = plan_threads(RuntimeConfig(workers=2, intra_op_threads=0), cores=4, branches=2)
    assert ort_default.peak_compute_threads == 8 and ort_default.oversubscribed
    mixed = plan_threads(RuntimeConfig(workers=1), cores=6, branches=2)
    assert (mixed.workers, mixed.intra_op) == (1, 6) and mixed.explicit == ("workers",)


def test_config_takes_auto_or_counts_and_names_bad_values():
    config = load_config(None, ["runtime.intra_op_threads=3", "runtime.workers=1"])
    assert config.runtime.intra_op_threads == 3 and config.runtime.workers == 1
    assert load_config(None).runtime.opencv_threads == "auto"
    for bad, key in (("runtime.workers=0", "runtime.workers"), ("runtime.intra_op_threads=many",
                                                                  "runtime.intra_op_threads"),
                     ("runtime.blas_threads=-1", "runtime.blas_threads"), ("runtime.opencv_threads=true",
                                                                          "runtime.opencv_threads")):
        with pytest.raises(ConfigError, match=key):
            load_config(None, [bad])


def test_available_cores_and_blas_setter_round_trip():
    assert available_cores() >= 1
    before = blas_threads()
    if before is None:
        pytest.skip("no OpenBLAS loaded in this numpy")
    try:
        assert set_blas_threads(1) == 1
    finally:
        set_blas_threads(before)
