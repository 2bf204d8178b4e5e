import datetime as dt
import subprocess
import sys
import time

import pytest

from vistarank.config import ConfigError, load_config, parse_override


def test_base_has_defaults_for_the_embedded_lakehouse():
    cfg = load_config()
    assert cfg.lakehouse.root == "./lakehouse"
    assert cfg.world.size == "demo"
    assert cfg.world.dims().n_sales == 2000
    assert cfg.effective_run_date() == cfg.world.end_date


def test_base_yaml_holds_every_key_at_the_models_default():
    """The pydantic models are the one source of defaults; conf/base.yaml spells every key
    out at that default, for users to read and copy."""
    import yaml

    from vistarank.config import Config, conf_dir_default

    def keys(d: dict, prefix: str = "") -> set[str]:
        return {k2 for k, v in d.items() for k2 in
                ([f"{prefix}{k}"] + (sorted(keys(v, f"{prefix}{k}.")) if isinstance(v, dict) else []))}

    with open(conf_dir_default() / "base.yaml") as fh:
        written = yaml.safe_load(fh)
    defaults = Config().model_dump(mode="json", exclude={"env"})
    assert keys(written) == keys(defaults)
    assert load_config("base").model_dump(mode="json", exclude={"env"}) == defaults


@pytest.mark.parametrize("env", ["local", "cluster", "databricks"])
def test_every_overlay_loads(env):
    cfg = load_config(env)
    assert cfg.env == env


def test_unknown_key_names_the_key_and_the_closest_valid_one():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["world.sise=tiny"])
    assert "world.sise" in str(e.value) and "did you mean 'world.size'" in str(e.value)


def test_unknown_top_level_section():
    with pytest.raises(ConfigError, match="'lakehose' is unknown; did you mean 'lakehouse'"):
        load_config(overrides=["lakehose.root=/x"])


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="spark.shuffle_partitions"):
        load_config(overrides=["spark.shuffle_partitions=many"])


def test_out_of_range_value():
    with pytest.raises(ConfigError, match="world.purchase_rate"):
        load_config(overrides=["world.purchase_rate=2"])
    # the aesthetics score cap: 0 turns it off; one fold would train on nothing
    with pytest.raises(ConfigError, match="training.aesthetics_cap_folds"):
        load_config(overrides=["training.aesthetics_cap_folds=1"])
    assert load_config(overrides=["training.aesthetics_cap_folds=0"]).training.aesthetics_cap_folds == 0


def test_missing_path_fails():
    with pytest.raises(ConfigError, match="ingest.source.*does not exist"):
        load_config(overrides=["ingest.source=/definitely/not/here"])


def test_unknown_env():
    with pytest.raises(ConfigError, match="no staging.yaml"):
        load_config("staging")


def test_overrides_are_typed():
    assert parse_override("a.b=3") == {"a": {"b": 3}}
    assert parse_override("a=true") == {"a": True}
    cfg = load_config(overrides=["world.seed=7", "run_date=2026-09-10"])
    assert cfg.world.seed == 7 and str(cfg.effective_run_date()) == "2026-09-10"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("novalue")


def test_bad_config_fails_before_spark_starts():
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "vistarank.jobs.generate_world", "--set", "world.sise=tiny"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "did you mean 'world.size'" in p.stderr
    assert "SparkContext" not in p.stderr and "Ivy" not in p.stderr
    assert time.perf_counter() - t0 < 60


def test_scheduled_runs_compute_the_day_they_run_and_the_demo_keeps_its_last_day():
    before = dt.datetime.now(dt.timezone.utc).date()
    scheduled = {env: load_config(env).effective_run_date() for env in ("cluster", "databricks")}
    after = dt.datetime.now(dt.timezone.utc).date()
    for env, d in scheduled.items():
        assert before <= d <= after, (env, d)
    local = load_config("local")
    assert local.run_date is None and local.effective_run_date() == local.world.end_date
    assert load_config("cluster", ["run_date=2026-03-01"]).effective_run_date() == dt.date(2026, 3, 1)
    assert load_config("cluster", ["run_date=latest"]).effective_run_date() == local.world.end_date
    assert before <= load_config("local", ["run_date=today"]).run_date <= after


def test_console_progress_only_on_a_terminal(monkeypatch):
    from vistarank.session import embedded_conf, show_progress

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    cfg = load_config()
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not show_progress(cfg) and embedded_conf(cfg)["spark.ui.showConsoleProgress"] == "false"
    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert show_progress(cfg) and embedded_conf(cfg)["spark.ui.showConsoleProgress"] == "true"
    assert not show_progress(load_config(overrides=["spark.show_progress=false"]))
