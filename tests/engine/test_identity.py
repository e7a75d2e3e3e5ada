import pytest

from geoproc import get_job, ids
from geoproc.errors import InvalidParams, UnknownJob

HW = get_job("hello_world")


def test_job_id_is_sha256_of_type_and_normalized_params():
    a = HW.job_id(HW.validate({"n": 5}))
    b = HW.job_id(HW.validate({"n": 5, "message": "Hello World"}))
    assert a == b and len(a) == 64
    assert a == ids.job_id("hello_world", {"message": "Hello World", "n": 5})


def test_hash_excluded_params_do_not_change_the_id():
    base = HW.job_id(HW.validate({"n": 5}))
    assert HW.job_id(HW.validate({"n": 5, "failure_rate": 0.5, "delay": 0.1})) == base
    assert HW.job_id(HW.validate({"n": 6})) != base


def test_task_ids_are_deterministic_and_readable():
    jid = "ab" * 32
    assert ids.task_id(jid, "greet", "17") == f"{jid[:16]}-greet-17"
    long_key = "container/some/deep/path/file name.tif"
    t = ids.task_id(jid, "cog", long_key)
    assert t == ids.task_id(jid, "cog", long_key) and "/" not in t and len(t) < 60


def test_unknown_job_lists_available():
    with pytest.raises(UnknownJob, match="available: .*hello_world"):
        get_job("helo_world")


def test_bad_params_name_field_value_and_range():
    with pytest.raises(InvalidParams) as e:
        HW.validate({"n": 0, "failure_rate": 1.5})
    msg = str(e.value)
    assert "n=0" in msg and ">= 1, <= 100000" in msg
    assert "failure_rate=1.5" in msg and "<= 1.0" in msg
    with pytest.raises(InvalidParams, match="unknown parameter; allowed: n, message"):
        HW.validate({"nn": 3})


def test_describe_params_marks_hash_excluded():
    d = {p["name"]: p for p in HW.describe_params()}
    assert d["n"]["bounds"] == ">= 1, <= 100000" and d["n"]["default"] == 3
    assert d["failure_rate"]["hashed"] is False and d["n"]["hashed"] is True


def test_missing_required_param_is_named_plainly():
    from geoproc import get_job

    with pytest.raises(InvalidParams, match=r"input: required parameter is missing") as e:
        get_job("cog").validate({"output": "x"})
    assert "{" not in str(e.value)  # the whole params dict is not echoed
