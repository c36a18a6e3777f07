"""The thread policy: explicit choices honoured, otherwise the CPUs available less those kept busy elsewhere."""
import subprocess
import sys
import time

import pytest
import torch

from mimo.pipeline.runtime import threads
from mimo.pipeline.errors import DataError


@pytest.fixture
def policy(monkeypatch):
    for name in ("MIMO_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    saved = torch.get_num_threads()
    yield threads.ThreadPolicy()
    torch.set_num_threads(saved)


def test_choose_leaves_the_cores_other_processes_keep_busy():
    assert threads.choose(2, 0.0) == 2
    assert threads.choose(2, 0.3) == 2          # a background blip does not take a core
    assert threads.choose(2, 0.9) == 1
    assert threads.choose(2, 5.0) == 1          # never fewer than one
    assert threads.choose(8, 2.6) == 5
    assert threads.choose(8, None) == 8         # load unknown: every available CPU
    assert threads.choose(8, 0.0, max_useful=1) == 1


def test_busy_seconds_count_only_this_process_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  900 0 100 5000 0 0 0 0 0 0\n"
                    "cpu0 100 0 50 2500 0 0 0 0 0 0\n"
                    "cpu1 800 0 50 2500 0 0 0 20 0 0\n"
                    "intr 12345\n")
    tick = threads.os.sysconf("SC_CLK_TCK")
    assert threads.read_busy_seconds({0}, str(stat)) == pytest.approx(150 / tick)
    assert threads.read_busy_seconds({1}, str(stat)) == pytest.approx(870 / tick)  # stolen time counts as busy
    assert threads.read_busy_seconds(None, str(stat)) == pytest.approx(1020 / tick)
    assert threads.read_busy_seconds(None, str(tmp_path / "missing")) is None


def test_explicit_counts_win_in_order(policy, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    policy.request(None)
    assert (policy.requested, policy.source) == (3, "$OMP_NUM_THREADS")
    monkeypatch.setenv("MIMO_THREADS", "1")
    policy.request(None)
    assert (policy.requested, policy.source) == (1, "$MIMO_THREADS")
    policy.request(2)
    assert (policy.requested, policy.source) == (2, "--threads")
    assert policy.adapt() == 2 and torch.get_num_threads() == 2
    assert policy.adapt(max_useful=1) == 1 and torch.get_num_threads() == 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_count_in_the_environment_is_one_clear_error(policy, monkeypatch, value):
    monkeypatch.setenv("MIMO_THREADS", value)
    with pytest.raises(DataError, match=r"\$MIMO_THREADS: the number of threads must be a whole number >= 1"):
        policy.request(None)


def test_automatic_count_gives_way_to_a_busy_process(policy):
    cpus = threads.available_cpus()
    assert policy.adapt() >= 1
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        policy.last = None  # measure afresh, with the competitor running
        n = policy.adapt()
    finally:
        busy.kill()
        busy.wait()
    assert n <= max(1, cpus - 1)
    assert torch.get_num_threads() == n
    # the competitor's core was seen busy (recorded at every measurement: with one CPU the count stays 1, so
    # no change of count, and no entry in the history, shows it)
    assert policy.load >= threads.BUSY_CORE


def test_cli_rejects_a_bad_threads_option():
    from click.testing import CliRunner

    from mimo.cli import main

    result = CliRunner().invoke(main, ["--threads", "0", "report"])
    assert result.exit_code == 2 and "--threads" in result.output


def test_cli_names_a_bad_thread_count_in_the_environment(monkeypatch):
    from click.testing import CliRunner

    from mimo.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", "abc")
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: $OMP_NUM_THREADS: the number of threads must be a whole number >= 1, "
                                     "not 'abc'")


def _thread_state() -> tuple:
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), sorted((i["internal_api"], i["prefix"], i["num_threads"]) for i in threadpool_info())


@pytest.mark.parametrize("limit", [None, 1])
def test_a_python_fit_leaves_the_process_thread_settings_alone(monkeypatch, limit):
    """From Python the policy is off: a fit neither measures the load (no 0.1 s wait) nor changes torch's or
    BLAS's threads; a head's ``threads`` applies during its fit and predict only."""
    import numpy as np

    from mimo.models.estimators.neural.regressors import MlpRegressor
    from mimo.models.estimators.ridge import ValidatedRidge

    monkeypatch.setattr(threads, "POLICY", threads.ThreadPolicy())  # as in a fresh Python process
    before = _thread_state()
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(120, 20)).astype(np.float32), rng.normal(size=120)
    seen = []
    ValidatedRidge(threads=limit).fit(X, y).predict(X)
    MlpRegressor(hidden=(4,), epochs=2, device="cpu", threads=limit).fit(
        X, y, log=lambda line: seen.append(torch.get_num_threads())).predict(X)
    assert _thread_state() == before
    assert seen == [limit or before[0]] * 2  # the head's count while it trained
    assert threads.POLICY.last is None and threads.POLICY.history == []  # the load was never measured
    assert threads.adapt() is None


def test_the_command_turns_the_policy_on(monkeypatch):
    monkeypatch.setattr(threads, "POLICY", threads.ThreadPolicy())
    saved = torch.get_num_threads()
    try:
        threads.set_threads(1)
        assert threads.POLICY.enabled and threads.adapt() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)


def test_torch_and_blas_are_never_both_on_several_threads(monkeypatch):
    assert threads.blas_threads(2, torch_loaded=True) == 1 and threads.blas_threads(1, torch_loaded=True) == 1
    assert threads.blas_threads(2, torch_loaded=False) == 2  # a process without torch (ridge) gives BLAS the count
    monkeypatch.setattr(threads, "POLICY", threads.ThreadPolicy())
    saved = torch.get_num_threads()
    from threadpoolctl import threadpool_info
    try:
        threads.set_threads(2)
        threads.adapt()
        assert torch.get_num_threads() == 2
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
    finally:
        torch.set_num_threads(saved)
        threads._limit_blas(saved)


@pytest.mark.parametrize("chosen, expected", [(None, 1), ("2", 2)])
def test_the_gp_runs_on_one_thread_unless_the_user_chose_a_count(monkeypatch, chosen, expected):
    import numpy as np

    from mimo.models.estimators.gp.regressor import GaussianProcessRegressor

    monkeypatch.setattr(threads, "POLICY", threads.ThreadPolicy())
    monkeypatch.delenv("MIMO_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if chosen:
        monkeypatch.setenv("MIMO_THREADS", chosen)
    before = _thread_state()
    seen = []
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=40)
    GaussianProcessRegressor(steps=2).fit(X, y, log=None)
    model = GaussianProcessRegressor(steps=2)
    model._posterior = lambda X, return_std=False: seen.append(torch.get_num_threads()) or np.zeros(len(X))
    model.fit(X, y).predict(X)
    assert seen == [expected] and _thread_state() == before
