"""Pages of what the books decide: models and their gates, deployments, monitors and their
findings with drift plots, and the audit log with the chain's verification."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from starlette.responses import RedirectResponse, Response

from featureledger.definitions.identity import VersionId
from featureledger.errors import AccessDeniedError, DataError, FeatureLedgerError
from featureledger.ui._render import BadInput, Ctx, page

AUDIT_PAGE = 100
#: a verification of the audit chain is reused this long while the chain has not grown
#: (an edit of an old entry that leaves the head alone shows up at the next check)
VERIFY_SECONDS = 60.0


@dataclass
class _Verification:
    head: tuple[int, str]
    problems: list[str]
    at: datetime
    done: float  # monotonic


class AuditChecks:
    """The newest verification of the audit chain, reused while the head is unchanged and
    younger than `VERIFY_SECONDS`: on 10,000 entries a verification takes seconds, and the
    audit page is read far more often than the chain grows. Verified in the request's own
    thread, one at a time (no background thread that could outlive the app or its store)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.result: _Verification | None = None

    def status(self, store: Any, head: tuple[int, str]) -> _Verification:
        with self.lock:
            r = self.result
            if r is None or r.head != head or time.monotonic() - r.done >= VERIFY_SECONDS:
                try:
                    problems = store.audit_verify()
                except FeatureLedgerError as exc:  # shown on the page instead of a verdict
                    problems = [f"verification failed: {exc}"]
                r = _Verification(head, problems, datetime.now(UTC), time.monotonic())
                self.result = r
            return r


@page("/models", nav="Models")
def models(ctx: Ctx) -> Response:
    by_name: dict[str, list[Any]] = {}
    for m in ctx.store.models():
        by_name.setdefault(m.name, []).append(m)
    current = {}
    for d in ctx.store.deployments():
        current[d.name] = d  # oldest first: the last one per name is current
    serving: dict[str, list[str]] = {}
    for d in current.values():
        serving.setdefault(str(d.model_identity), []).append(d.name)
    return ctx.render(
        "models.html",
        models={k: list(reversed(v)) for k, v in sorted(by_name.items())},
        serving=serving,
    )


@page("/model/{name}")
def model(ctx: Ctx) -> Response:
    name = ctx.request.path_params["name"]
    versions = list(reversed(ctx.store.models(name)))
    if not versions:
        known = sorted({m.name for m in ctx.store.models()})
        raise BadInput(f"model {name!r} is not registered; known models: {known or 'none'}")
    history = [d for d in ctx.store.deployments() if d.model == name]
    return ctx.render("model.html", name=name, versions=versions, history=history)


@page("/deployments", nav="Deployments")
def deployments(ctx: Ctx) -> Response:
    history = ctx.store.deployments()
    names: dict[str, list[Any]] = {}
    for d in history:
        names.setdefault(d.name, []).append(d)
    return ctx.render(
        "deployments.html",
        deployments={k: list(reversed(v)) for k, v in sorted(names.items())},
        # the traffic split (primary, canary weight, shadow, fallback) and what each arm
        # served, as `featureledger deployment status` prints it
        traffic={k: ctx.store.deployment_status(k) for k in names},
    )


def drift_link(evidence: Any) -> tuple[str, str] | None:
    """The (reference, current) pair a finding compared, when its evidence names one."""
    if not isinstance(evidence, dict):
        return None
    ref, cur = evidence.get("reference"), evidence.get("current")
    if isinstance(ref, str) and isinstance(cur, str):
        return ref, cur
    return None


@page("/monitors", nav="Monitors")
def monitors(ctx: Ctx) -> Response:
    findings = ctx.store.open_findings()
    return ctx.render(
        "monitors.html",
        monitors=ctx.store.monitors(),
        findings=findings,
        drift_links=[drift_link(f.get("evidence")) for f in findings],
    )


@page("/monitors/{name}/resolve", methods=("POST",))
def resolve(ctx: Ctx) -> Response:
    """Accept a monitor's open findings with a reason: writers and admins only."""
    name = ctx.request.path_params["name"]
    if not ctx.viewer.may_write:
        raise AccessDeniedError(
            f"token {ctx.viewer.record.id} is a {ctx.viewer.record.role}; resolving findings "
            "needs a writer or admin token"
        )
    reason = ctx.form.get("reason", "").strip()
    if not reason:
        raise DataError("give a reason when resolving a finding; it goes to the audit log")
    ctx.store.resolve_monitor(name, reason=f"{reason} (token {ctx.viewer.record.id}, web UI)")
    return RedirectResponse(f"{ctx.root}/monitors", status_code=303)


def _private_of(ctx: Ctx, identity: str) -> set[str]:
    v = VersionId.parse(identity)
    if v.kind == "feature_group":
        return ctx.hidden_group_columns(v.name, v.major)
    if v.kind in ("feature_view", "training_dataset"):
        return ctx.hidden_view_columns(v.name)
    return set()


@page("/drift")
def drift(ctx: Ctx) -> Response:
    """Drift of ``current`` against ``reference`` per feature, with one plot each."""
    reference, current = ctx.arg("reference").strip(), ctx.arg("current").strip()
    if not reference or not current:
        raise BadInput("give the two versions to compare: reference=... and current=...")
    report = ctx.store.drift(reference, current)
    hidden = _private_of(ctx, reference) | _private_of(ctx, current)
    plots: dict[str, str] = {}
    note = ""
    try:
        from featureledger.monitoring.report import render_plots
    except ImportError:  # matplotlib is the optional `plots` extra
        note = "plots need matplotlib: pip install 'featureledger[plots]'"
    else:
        try:
            shown = [f for f in report.features if f not in hidden]
            sub = replace(report, features={f: report.features[f] for f in shown})
            plots = {
                name: "data:image/png;base64," + base64.b64encode(png).decode()
                for name, png in render_plots(sub, dpi=60).items()
            }
        except (FeatureLedgerError, TypeError, ValueError) as exc:
            note = f"plots could not be drawn: {exc}"
    return ctx.render(
        "drift.html",
        reference=reference,
        current=current,
        report=report,
        plots=plots,
        hidden=hidden,
        note=note,
    )


@page("/audit", nav="Audit")
def audit(ctx: Ctx) -> Response:
    obj = ctx.arg("object").strip() or None
    entries = ctx.store.audit_log(obj)
    start = max(ctx.int_arg("page", 1) or 1, 1)
    shown = list(reversed(entries))[(start - 1) * AUDIT_PAGE : start * AUDIT_PAGE]
    head = entries[-1] if entries and obj is None else None
    if obj is None:
        whole = head
    else:
        log = ctx.store.audit_log()
        whole = log[-1] if log else None
    checks: AuditChecks = ctx.request.app.state.audit_checks
    verification = checks.status(ctx.store, (whole.seq, whole.hash) if whole else (0, ""))
    return ctx.render(
        "audit.html",
        entries=shown,
        total=len(entries),
        page=start,
        pages=max((len(entries) + AUDIT_PAGE - 1) // AUDIT_PAGE, 1),
        object=obj or "",
        verification=verification,
        head=head,
    )
