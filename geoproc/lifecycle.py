"""The publishing lifecycle of a job: review before publishing, approve or reject, unpublish.

A job run with ``publish=review`` writes its outputs and a preview catalog, and ends
``awaiting_review``: nothing reaches pgstac or the public static catalog. :func:`approve` runs the
public step each stage held back (:attr:`geoproc.model.Stage.publish`) with that stage's results
from the ledger; :func:`reject` closes the job and, if asked, removes what it wrote. Each decision is
an event in the ledger that says who decided, when and why; ``geoproc status`` and ``events`` show it.

:func:`unpublish` takes a published job back: its STAC items out of pgstac and the static catalog
(whose collections are recomputed from what remains), then the files its tasks wrote, but only those
whose sha256 still matches the ledger's record. It plans by default and acts with ``yes``; each step
is an event, and every step can run again, so an interrupted unpublish is finished by running it again.

A decision holds the job's lease while it acts, as a driver does: two reviewers cannot decide at
once, and a run cannot start under a decision. An approval interrupted halfway is simply given
again: the job is still awaiting review, and publishing is idempotent (upserts, whole-file writes).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .api import JobResult, job_summary
from .engine.batching import written_files
from .engine.verdict import APPROVED, REJECTED
from .errors import InvalidSetting, JobBusy, UserError
from .jobs import ALL_JOBS, get_job
from .ledger import JobRecord, Ledger, open_ledger, owner_token
from .model import STAGED, JobType, WrittenFile
from .settings import Settings
from .status import JobStatus, TaskStatus
from .storage import open_fs, redact, resolve_storage_options
from .storage.outputs import remove_unchanged
from .storage.urls import canonical
from .units import utc_iso

UNPUBLISHED = "unpublished"  # the event that closes a job's unpublish

__all__ = ["ReviewRefused", "UnpublishRefused", "approve", "reject", "review_state", "reviewer", "unpublish", "history"]


class ReviewRefused(UserError):
    """The job is not awaiting review: never held for one, not finished, or already decided."""


class UnpublishRefused(UserError):
    """Nothing to unpublish, or nothing geoproc can prove it wrote."""


def reviewer(by: str | None = None) -> str:
    """Who decides: ``by``, else ``$GEOPROC_USER``, else the login name."""
    return by or os.environ.get("GEOPROC_USER") or getpass.getuser()


@contextmanager
def _decision(job_id: str, ledger: str | Ledger | None, settings: Settings | None) -> Iterator[tuple[Ledger, JobRecord]]:
    """The ledger and the job, under the job's lease for as long as the decision takes."""
    settings = settings or Settings()
    led = ledger if isinstance(ledger, Ledger) else open_ledger(ledger or settings.ledger, settings)
    owner = owner_token()
    try:
        job = led.find_job(job_id)
        if not led.acquire_lease(job.job_id, owner, settings.lease_ttl):
            raise JobBusy(f"Job {job.job_id[:12]} is being run or decided by another process; try again when "
                          "it is done (`geoproc status` shows it).")
        try:
            yield led, led.get_job(job.job_id) or job
        finally:
            led.release_lease(job.job_id, owner)
    finally:
        if not isinstance(ledger, Ledger):
            led.close()


def _expect_review(led: Ledger, job: JobRecord) -> None:
    """Refuse a decision on a job that is not awaiting one, saying why."""
    if job.status == JobStatus.AWAITING_REVIEW:
        return
    decision = led.last_event(job.job_id, (APPROVED, REJECTED))
    if decision:
        data = decision["data"] or {}
        verb = "approved" if decision["kind"] == APPROVED else "rejected"
        raise ReviewRefused(f"Job {job.job_id[:12]} was already {verb} by {data.get('by')} at "
                            f"{utc_iso(decision['at'])}; its status is {job.status}.")
    if (job.params or {}).get("publish") != "review":
        raise ReviewRefused(f"Job {job.job_id[:12]} was not run with publish=review (status {job.status}): "
                            "it had nothing to approve or reject.")
    raise ReviewRefused(f"Job {job.job_id[:12]} is {job.status}, not awaiting review; run it to the end first "
                        "(`geoproc run` with the same parameters resumes it).")


def _staged(jt: JobType, values: dict[int, Any]) -> dict[int, dict[str, Any]]:
    """stage index -> what the stage staged, for the stages that hold a public step back (``values``:
    the job's stage results)."""
    return {i: values[i][STAGED] for i, st in enumerate(jt.stages)
            if st.publish is not None and isinstance(values.get(i), dict) and isinstance(values[i].get(STAGED), dict)}


def approve(job_id: str, *, by: str | None = None, note: str | None = None, ledger: str | Ledger | None = None,
            settings: Settings | None = None) -> JobResult:
    """Publish a job that awaits review: its items into pgstac (checked batches) and the public catalog.

    The items come from the ledger, not from the preview files, so what is published is what the
    tasks recorded. The pgstac password is never stored: give it as ``pgstac_dsn=env`` at run time
    (``GEOPROC_PGSTAC_DSN`` here too), ``PGPASSWORD`` or ``~/.pgpass``.
    """
    who = reviewer(by)
    with _decision(job_id, ledger, settings) as (led, job):
        _expect_review(led, job)
        jt = get_job(job.job_type)
        params = jt.validate(job.params)
        values = led.stage_results(job.job_id)
        staged = _staged(jt, values)
        published: dict[str, Any] = {}
        for i, st in enumerate(jt.stages):
            if i in staged:
                values[i] = st.publish(params, led.stream_results(job.job_id, i))  # type: ignore[misc]
                led.set_stage_result(job.job_id, i, st.name, values[i])
                published[st.name] = values[i]
        result = job.result
        if jt.finalize:
            result = jt.finalize(params, [values.get(i) for i in range(len(jt.stages))])
            if isinstance(job.result, dict) and "failed_tasks" in job.result and isinstance(result, dict):
                result = {**result, "failed_tasks": job.result["failed_tasks"]}
        status = JobStatus.COMPLETED_WITH_ERRORS if job.error else JobStatus.COMPLETED
        led.update_job(job.job_id, status=status, result=result)
        led.event(job.job_id, APPROVED, message=f"approved by {who}" + (f": {note}" if note else ""),
                  data={"by": who, "note": note, "digests": [staged[i]["digest"] for i in sorted(staged)],
                        "published": published})
        return job_summary(led, led.get_job(job.job_id) or job)


def reject(job_id: str, *, reason: str, by: str | None = None, delete_outputs: bool = False,
           ledger: str | Ledger | None = None, settings: Settings | None = None) -> JobResult:
    """Turn down a job that awaits review; nothing is published. ``delete_outputs`` also removes the
    files its tasks wrote (those still as written: a file changed since is kept and named) and its
    preview catalog."""
    if not reason or not reason.strip():
        raise InvalidSetting("a rejection needs a reason (--reason): it is recorded for whoever reads the job")
    who = reviewer(by)
    with _decision(job_id, ledger, settings) as (led, job):
        _expect_review(led, job)
        jt = get_job(job.job_type)
        removal: dict[str, Any] = {}
        if delete_outputs:
            removal = _remove_outputs(led, jt, job)
        led.update_job(job.job_id, status=JobStatus.REJECTED)
        led.event(job.job_id, REJECTED, message=f"rejected by {who}: {reason}",
                  data={"by": who, "reason": reason, **removal})
        return job_summary(led, led.get_job(job.job_id) or job)


def _remove_outputs(led: Ledger, jt: JobType, job: JobRecord) -> dict[str, Any]:
    """Remove the files the job's tasks recorded, then its preview catalogs."""
    storage_options = resolve_storage_options()
    done = _removal(_files_of(led, jt, jt.validate(job.params), job.job_id), storage_options)
    done["previews"] = []
    for staged in _staged(jt, led.stage_results(job.job_id)).values():
        if staged.get("catalog"):
            root = staged["catalog"].rsplit("/", 1)[0]
            fs, path = open_fs(root, storage_options)
            if fs.exists(path):
                fs.rm(path, recursive=True)
            done["previews"].append(redact(root))
    return done


def _files_of(led: Ledger, jt: JobType, params: Any, job_id: str, keys: set[str] | None = None) -> list[WrittenFile]:
    """The files the job's completed tasks recorded (only those of the tasks keyed ``keys``, if given),
    each once, with its checksum when a stage recorded one (a Zarr store is named by its template and by
    its finalize). Alternatives, where a task's work lives until an assembly, are no files of their own."""
    best: dict[str, WrittenFile] = {}
    for i, st in enumerate(jt.stages):
        if st.outputs is None:
            continue
        rows = led.list_tasks(job_id, status=TaskStatus.COMPLETED, stage=i, limit=None)
        found, _ = written_files(st.outputs, params, ((None, t["result"]) for t in rows
                                                      if keys is None or t["key"] in keys))
        for f in found:
            url = f[0]
            if isinstance(url, str) and (url not in best or (f[2] and not best[url][2])):
                best[url] = f
    return list(best.values())


def _removal(files: list[WrittenFile], storage_options: dict[str, Any]) -> dict[str, Any]:
    """:func:`~geoproc.storage.outputs.remove_unchanged`, its URLs as the ledger shows them (no secrets)."""
    done = remove_unchanged(files, storage_options)
    return {"removed": [redact(u) for u in done["removed"]], "gone": [redact(u) for u in done["gone"]],
            "refused": {redact(u): why for u, why in done["refused"].items()}}


def review_state(led: Ledger, job: JobRecord) -> dict[str, Any] | None:
    """Where a ``publish=review`` job stands: awaiting (with its previews), approved or rejected, by
    whom, when and why; None for a job that publishes at once."""
    if (job.params or {}).get("publish") != "review":
        return None
    decision = led.last_event(job.job_id, (APPROVED, REJECTED))
    if job.status == JobStatus.AWAITING_REVIEW or decision is None:
        staged = _staged(get_job(job.job_type), led.stage_results(job.job_id))
        previews = [s["catalog"] for s in staged.values() if s.get("catalog")]
        return {"state": "awaiting" if job.status == JobStatus.AWAITING_REVIEW else "not staged",
                "previews": [redact(p) for p in previews]}
    data = decision["data"] or {}
    return {"state": "approved" if decision["kind"] == APPROVED else "rejected", "by": data.get("by"),
            "at": utc_iso(decision["at"]), "note": data.get("note"), "reason": data.get("reason")}


# --- unpublish ---------------------------------------------------------------------------------------


@dataclass
class Withdrawal:
    """What unpublishing one job takes back: its items (ids in one collection) and the files it wrote."""

    job: JobRecord
    params: Any
    collection: str | None = None
    items: list[str] = field(default_factory=list)
    outputs: list[WrittenFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        p = self.params
        return {"job_id": self.job.job_id, "job_type": self.job.job_type, "collection": self.collection,
                "items": self.items, "outputs": [redact(u) for u, _, _ in self.outputs],
                "static_catalog": redact(p.stac_catalog) if getattr(p, "stac_catalog", None) else None,
                "pgstac": bool(getattr(p, "pgstac_dsn", None))}


def _withdrawal(led: Ledger, job: JobRecord, item: str | None = None) -> Withdrawal:
    """The job's published items (or the one named ``item``) and the files of the tasks behind them."""
    jt = get_job(job.job_type)
    if not any(st.publish or st.outputs for st in jt.stages):
        raise UnpublishRefused(f"Job {job.job_id[:12]} ({job.job_type}) publishes nothing and records no "
                               "outputs: there is nothing to unpublish.")
    w = Withdrawal(job, jt.validate(job.params))
    keys: set[str] = set()
    for i, st in enumerate(jt.stages):
        if st.publish is None:
            continue
        for t in led.list_tasks(job.job_id, status=TaskStatus.COMPLETED, stage=i, limit=None):
            r = t["result"] or {}
            if item is None or r.get("id") == item:
                w.items.append(r["id"])
                w.collection = (r.get("item") or {}).get("collection", w.collection)
                keys.add(t["key"])
    w.outputs = _files_of(led, jt, w.params, job.job_id, keys if item is not None else None)
    return w


def _jobs_of(led: Ledger, collection: str) -> list[JobRecord]:
    """The jobs whose published items are in ``collection``, oldest first."""
    out = []
    for job in reversed(led.list_jobs(limit=100_000)):
        jt = get_job(job.job_type) if job.job_type in ALL_JOBS else None
        if jt is None or job.status not in PUBLISHED:
            continue
        values = led.stage_results(job.job_id)
        if any(st.publish and isinstance(values.get(i), dict) and values[i].get("collection") == collection
               for i, st in enumerate(jt.stages)):
            out.append(job)
    return out


def unpublish(job_id: str | None = None, *, collection: str | None = None, item: str | None = None,
              yes: bool = False, by: str | None = None, ledger: str | Ledger | None = None,
              settings: Settings | None = None) -> dict[str, Any]:
    """Take back what a job published: ``job_id``, or every job that published into ``collection``
    (``item``: only that item, and the file behind it).

    Without ``yes`` nothing changes: the result is the plan. With it, per job: items out of pgstac and
    the static catalog (collections recomputed), then the outputs whose sha256 still matches the
    ledger (changed ones are kept and listed under ``refused``). A whole job ends ``unpublished``.
    """
    if bool(job_id) == bool(collection):
        raise InvalidSetting("unpublish needs a job id, or --collection (with --item for one item)")
    if item and not collection:
        raise InvalidSetting("--item needs --collection: item ids are unique only within a collection")
    settings = settings or Settings()
    who = reviewer(by)
    led = ledger if isinstance(ledger, Ledger) else open_ledger(ledger or settings.ledger, settings)
    try:
        if job_id:
            jobs = [led.find_job(job_id)]
        else:
            jobs = _jobs_of(led, collection)  # type: ignore[arg-type]
            if not jobs:
                raise UnpublishRefused(f"No job in the ledger {led.url} published the collection {collection!r}; "
                                       "`geoproc jobs` lists what ran here.")
        plans = [_withdrawal(led, _published(led, job), item) for job in jobs]
        plans = [w for w in plans if w.items or w.outputs]
        if item and not plans:
            raise UnpublishRefused(f"No job in the ledger {led.url} published the item {item!r} in {collection!r}.")
        for w in plans:
            if w.outputs and not any(sha for _, _, sha in w.outputs):
                raise UnpublishRefused(
                    f"The ledger holds no checksums for the {len(w.outputs)} outputs of job {w.job.job_id[:12]}, so "
                    "geoproc cannot tell its files from files changed since; it deletes nothing it cannot prove it "
                    f"wrote. Remove them by hand if they are yours (first: {redact(w.outputs[0][0])}).")
        if not yes:
            return {"dry_run": True, "jobs": [w.to_dict() for w in plans]}
        return {"dry_run": False, "jobs": [_withdraw(led, w, who, item, settings) for w in plans]}
    finally:
        if not isinstance(ledger, Ledger):
            led.close()


PUBLISHED = frozenset({JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED,
                       JobStatus.CANCELLED, JobStatus.INTERRUPTED})


def _published(led: Ledger, job: JobRecord) -> JobRecord:
    """The job, if it may be unpublished: it ran (its items were published as it went), and it was not
    held for review (reject that instead) nor already taken back."""
    if job.status == JobStatus.AWAITING_REVIEW:
        raise UnpublishRefused(f"Job {job.job_id[:12]} awaits review and published nothing; reject it instead "
                               f"(`geoproc reject {job.job_id[:12]} --reason ... --delete-outputs`).")
    if job.status in (JobStatus.UNPUBLISHED, JobStatus.REJECTED):
        done = led.last_event(job.job_id, (UNPUBLISHED, REJECTED))
        who = f" by {(done['data'] or {}).get('by')} at {utc_iso(done['at'])}" if done else ""
        raise UnpublishRefused(f"Job {job.job_id[:12]} was already {job.status}{who}.")
    return job


def _withdraw(led: Ledger, w: Withdrawal, who: str, item: str | None, settings: Settings) -> dict[str, Any]:
    """Unpublish one planned job, step by step, each step an event; every step may run again."""
    from .stac import StaticCatalog
    from .stac.pgstac import connect, delete_items

    job_id, p = w.job.job_id, w.params
    owner = owner_token()
    if not led.acquire_lease(job_id, owner, settings.lease_ttl):
        raise JobBusy(f"Job {job_id[:12]} is being run or decided by another process; unpublish it when that is done.")
    try:
        storage_options = resolve_storage_options()
        done: dict[str, Any] = {**w.to_dict(), "pgstac_deleted": 0, "static_removed": 0}
        led.event(job_id, "unpublish_started", message=f"by {who}" + (f", item {item}" if item else ""),
                  data={"by": who, "item": item, "items": len(w.items), "outputs": len(w.outputs)})
        if w.items and getattr(p, "pgstac_dsn", None):
            with connect(p.dsn()) as db:
                done["pgstac_deleted"] = delete_items(db, w.collection, w.items)  # type: ignore[arg-type]
            led.event(job_id, "unpublish_pgstac", message=f"{done['pgstac_deleted']} items deleted from "
                      f"{w.collection}", data={"collection": w.collection, "deleted": done["pgstac_deleted"]})
        if w.items and getattr(p, "stac_catalog", None):
            cat = StaticCatalog(p.stac_catalog, storage_options)
            done["static_removed"] = sum(cat.remove_item(w.collection, i) for i in w.items)  # type: ignore[arg-type]
            cat.recompute_collection(w.collection)  # type: ignore[arg-type]
            led.event(job_id, "unpublish_static", message=f"{done['static_removed']} item files removed",
                      data={"catalog": redact(p.stac_catalog), "removed": done["static_removed"]})
        done.update(_removal(w.outputs, storage_options))
        if w.outputs:
            led.event(job_id, "unpublish_outputs", message=f"{len(done['removed'])} removed, {len(done['refused'])} "
                      "refused", data={k: done[k] for k in ("removed", "gone", "refused")})
        if item is None:
            led.update_job(job_id, status=JobStatus.UNPUBLISHED)
        led.event(job_id, UNPUBLISHED if item is None else "item_unpublished",
                  message=f"unpublished by {who}" + (f": item {item}" if item else ""),
                  data={"by": who, "item": item, "refused": done["refused"]})
        return done
    finally:
        led.release_lease(job_id, owner)


# --- history -----------------------------------------------------------------------------------------


def history(url: str, *, ledger: str | Ledger | None = None, settings: Settings | None = None) -> list[dict[str, Any]]:
    """An output's revisions, oldest first: every job that wrote ``url``, the sha256 and size it
    recorded, when, and the revision number (one more for each new content; a job that kept the
    file as it was writes no new revision). ``current`` marks the revision the ledger says is there now.
    """
    settings = settings or Settings()
    led = ledger if isinstance(ledger, Ledger) else open_ledger(ledger or settings.ledger, settings, read_only=True)
    try:
        rows = led.output_history(redact(canonical(url)))
    finally:
        if not isinstance(ledger, Ledger):
            led.close()
    revisions: dict[str | None, int] = {}
    out = []
    for r in rows:
        key = r["sha256"] or f"unknown-{r['id']}"
        revisions.setdefault(key, len(revisions) + 1)
        out.append({"revision": revisions[key], "job_id": r["job_id"], "job_type": r["job_type"],
                    "status": r["status"], "sha256": r["sha256"], "size": r["size"], "at": utc_iso(r["at"]),
                    "current": False})
    if out:
        out[-1]["current"] = True
    return out
