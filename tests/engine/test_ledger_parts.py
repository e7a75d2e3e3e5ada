"""Ledger methods the faces use instead of touching its tables: deleting a job, footprint queries."""

from __future__ import annotations

from geoproc.ledger import open_ledger


def test_delete_job_forgets_the_job_and_all_it_recorded(ledger_url):
    led = open_ledger(ledger_url)
    try:
        led.create_job("a" * 64, "hello_world", {"n": 1}, 1)
        led.create_job("b" * 64, "hello_world", {"n": 2}, 1)
        for jid in ("a" * 64, "b" * 64):
            led.add_tasks([{"task_id": f"{jid[:16]}-greet-0", "job_id": jid, "stage": 0, "stage_name": "greet",
                            "seq": 0, "key": "0", "handler": "hello_world.greet", "params": {}}])
            led.set_stage_result(jid, 0, "greet", {"n": 1})
            led.event(jid, "probe")
        assert led.delete_job("a" * 64) is True
        assert led.get_job("a" * 64) is None
        assert led.list_tasks("a" * 64) == [] and led.events("a" * 64) == []
        assert led.stage_results("a" * 64) == {} and led.counts("a" * 64) == {}
        assert led.delete_job("a" * 64) is False  # already gone
        # the other job is untouched
        assert led.get_job("b" * 64) is not None and led.counts("b" * 64) == {0: {"pending": 1}}
        assert [e["kind"] for e in led.events("b" * 64)] == ["job_created", "probe"]
    finally:
        led.close()


def test_footprints_across_the_antimeridian_are_found(sqlite_url):
    led = open_ledger(sqlite_url)
    try:
        fiji, europe = "f" * 64, "e" * 64
        for jid, box in ((fiji, [170.0, -20.0, -175.0, -10.0]), (europe, [0.0, 40.0, 10.0, 50.0])):
            led.create_job(jid, "hello_world", {}, 1)
            led.set_bbox(jid, box)

        def found(box):
            return {j.job_id for j in led.list_jobs(bbox=box)}

        assert found([175.0, -15.0, 176.0, -14.0]) == {fiji}  # west of 180, inside the stored box
        assert found([-179.0, -15.0, -178.0, -14.0]) == {fiji}  # east of 180
        assert found([-170.0, -15.0, -160.0, -14.0]) == set()  # past the box's east edge
        assert found([178.0, -15.0, -179.0, -14.0]) == {fiji}  # a query box across the antimeridian too
        assert found([5.0, 45.0, 6.0, 46.0]) == {europe}
        assert found([-10.0, -15.0, 100.0, 50.0]) == {europe}
    finally:
        led.close()
