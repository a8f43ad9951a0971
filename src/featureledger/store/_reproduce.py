"""`reproduce` for every artifact: training sets, models, deployments and pipeline outputs.

Each report gives R(m) = data x code x environment for the artifact and everything it was
made from (a deployment covers its model, a model its training set), and for a training set
re-runs the join from its pins to compare the result's content hash.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from featureledger.definitions import Definition, FeatureView, VersionId
from featureledger.definitions.code import function_hash
from featureledger.errors import FeatureLedgerError, NotFoundError
from featureledger.hashing import artifact_sha256, content_hash, definition_hash
from featureledger.offline import ROW_COLUMN
from featureledger.registry import ModelRecord, RegistryBackend, RunRecord, TrainingDatasetRecord
from featureledger.store._catalog import Catalog
from featureledger.store._files import StoreFiles
from featureledger.store._models import TRAINING_CODE
from featureledger.store._pipelines import PipelineService
from featureledger.store._training import TrainingService, view_definition_hash
from featureledger.store._versions import VersionService
from featureledger.versioning.integrity import VerifyReport
from featureledger.versioning.provenance import (
    environment_hash,
    library_code_hash,
    pipeline_environment,
)
from featureledger.versioning.reproduce import FACTORS, LIBRARY_SOURCE, ReproduceReport, compare


class ReproduceService:
    """Recomputes the data, code and environment hashes of recorded artifacts."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        catalog: Catalog,
        files: StoreFiles,
        training: TrainingService,
        versioning: VersionService,
        pipelines: PipelineService,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.files = files
        self.training = training
        self.versioning = versioning
        self.pipelines = pipelines

    def reproduce(
        self, identity: str, *, definitions: Sequence[Definition] = ()
    ) -> ReproduceReport:
        """R(m) factor by factor for a training set, model, deployment, pipeline run or the
        data version a pipeline wrote (see the module docstring)."""
        ident = VersionId.parse(identity)
        if ident.kind == "training_dataset":
            return self.training_set(self.training.record(ident), definitions)
        if ident.kind == "model":
            return self.model(self._model(ident), definitions)
        if ident.kind == "deployment":
            return self.deployment(ident.name, definitions)
        run = self.pipelines.find_run(identity)
        if run.kind == "training-data" and run.outputs:
            return self.training_set(self.training.record(run.outputs[0]), definitions)
        if run.kind == "register-model" and run.outputs:
            return self.model(self._model(VersionId.parse(run.outputs[0])), definitions)
        return self.pipelines.reproduce(run, definitions=definitions)

    # -- training sets ---------------------------------------------------------------------
    def training_set(
        self,
        record: TrainingDatasetRecord,
        definitions: Sequence[Definition] = (),
        report: ReproduceReport | None = None,
        *,
        environment: bool = True,
    ) -> ReproduceReport:
        """Pins and entity frame re-hashed, the view's code compared, the join re-run."""
        ident = str(record.identity)
        outer = report is not None
        if report is None:
            report = ReproduceReport(ident)
        report.covers.append(ident)
        # code items carry the set's identity when the report covers more than the set
        prefix = f"{ident}: " if outer else ""
        for pin in record.pins.values():
            fg = self.catalog.get_feature_group(VersionId.parse(pin["identity"]).name, pin["major"])
            check = self.versioning.verify_version(fg, pin["version"])
            rows = check.actual_hash or (
                "missing" if any("missing" in p for p in check.problems) else "unreadable"
            )
            report.add("data", pin["identity"], pin["content"], rows)
        report.where[f"{prefix}entity frame"] = record.entity_path
        report.add("data", f"{prefix}entity frame", record.entity_hash, self._entity_hash(record))

        run = self.registry.run(record.run_id) if record.run_id else None
        params = run.params if run else {}
        fv = self._view(record, definitions)
        now = {f"on-demand {o.name}": o.code_hash for o in fv.on_demand}
        # the selection as registered: a live object differs only in unresolved defaults
        registered = self.catalog.get_feature_view(record.view, record.major)
        now["view definition"] = view_definition_hash(registered)
        then: dict[str, str] = dict(params.get("code", {}))
        if "view_definition" in params:
            then["view definition"] = params["view_definition"]
        else:  # recorded before training sets kept their code
            then = {"view code": "not recorded"}
            now = {"view code": definition_hash(registered.to_dict())}
        self._compare_code(report, then, now, params, fv, prefix)

        if environment:
            self._environment(report, run, params, _imports(fv, params))
        try:
            report.output_expected = str(record.content)
            _, actual = self.training.rebuild(record, None)
            report.output_actual = str(actual)
        except FeatureLedgerError as exc:
            report.output_actual = None
            report.output_note = f"not rebuilt: {exc}"
        return report

    def _entity_hash(self, record: TrainingDatasetRecord) -> str:
        if not self.files.exists(record.entity_path):
            return "missing"
        frame = self.files.read_parquet(record.entity_path)
        # the recorded hash covers the row positions the join numbered the frame with
        rows = pa.array(np.arange(frame.num_rows, dtype=np.int64))
        return str(content_hash(frame.append_column(ROW_COLUMN, rows)))

    def _view(
        self, record: TrainingDatasetRecord, definitions: Sequence[Definition]
    ) -> FeatureView:
        """The view as it is now: the repository's definition when given, else the registered."""
        for d in definitions:
            if (
                isinstance(d, FeatureView)
                and d.name == record.view
                and (d.version or 1) == record.major
            ):
                self.catalog.use_definitions([d])
                return d
        return self.catalog.get_feature_view(record.view, record.major)

    def _compare_code(
        self,
        report: ReproduceReport,
        then: Mapping[str, str],
        now: Mapping[str, str],
        params: Mapping[str, Any],
        fv: FeatureView,
        prefix: str,
    ) -> None:
        compare(report, "code", then, now, prefix=prefix)
        for name, where in params.get("code_where", {}).items():
            report.where[f"{prefix}{name}"] = where
        # name the part of a changed transform that changed (its body, a helper, a constant)
        live = {f"on-demand {o.name}": o.function for o in fv.on_demand if o.function}
        for name, fn in live.items():
            if then.get(name) in (None, now.get(name)):
                continue
            parts_then = params.get("code_parts", {}).get(name, {})
            parts_now = dict(function_hash(fn).parts)
            for part in sorted(set(parts_then) | set(parts_now)):
                if parts_then.get(part) != parts_now.get(part):
                    report.add(
                        "code",
                        f"{prefix}{name}: {part}",
                        parts_then.get(part, "absent"),
                        parts_now.get(part, "absent"),
                    )

    def _environment(
        self,
        report: ReproduceReport,
        run: RunRecord | None,
        params: Mapping[str, Any],
        imports: list[str],
    ) -> None:
        if run is not None and "environment" in params:
            report.environment_lock = dict(params["environment"])
            compare(report, "environment", params["environment"], pipeline_environment(imports))
        elif run is not None:  # recorded before runs kept their environment: its hash only
            report.add("environment", "environment hash", run.env_hash, environment_hash())
        if run is not None:
            report.add("environment", LIBRARY_SOURCE, run.code_hash, library_code_hash())

    # -- models and deployments --------------------------------------------------------------
    def _model(self, ident: VersionId) -> ModelRecord:
        found = [
            m
            for m in self.registry.models(ident.name)
            if ident.number is None or m.version == ident.number
        ]
        if not found:
            raise NotFoundError(f"{ident} is not registered")
        return found[-1]

    def model(
        self,
        record: ModelRecord,
        definitions: Sequence[Definition] = (),
        report: ReproduceReport | None = None,
    ) -> ReproduceReport:
        """The artifact's hash, its training set (data and code), its training code and the
        environment it was registered in."""
        ident = str(record.identity)
        report = report or ReproduceReport(ident)
        report.covers.append(ident)
        artifact = f"{ident}: artifact"
        report.where[artifact] = record.artifact_path
        now = (
            self.files.sha256(record.artifact_path)
            if self.files.exists(record.artifact_path)
            else "missing"
        )
        report.add("data", artifact, record.artifact_hash, now)
        run = self.registry.run(record.run_id)
        params = run.params if run else {}
        if record.training_dataset:
            td = self.training.record(record.training_dataset)
            # the model's environment is the one it was registered (trained) in; a change
            # that alters the join shows in the training set's rebuilt content hash
            self.training_set(td, definitions, report, environment=False)
        code_then = params.get("code", {})
        where = params.get("code_where", {})
        for name, recorded in code_then.items():
            item = f"{ident}: {name}"
            report.where[item] = where.get(name, "")
            report.add("code", item, recorded, _current_code(recorded, where.get(name, "")))
        if TRAINING_CODE not in code_then:
            report.add("code", f"{ident}: {TRAINING_CODE}", "not recorded", "not recorded")
        self._environment(report, run, params, list(params.get("imports", [])))
        return report

    def deployment(self, name: str, definitions: Sequence[Definition] = ()) -> ReproduceReport:
        """The current model of a deployment, plus the serving transforms: the on-demand
        code the feature server runs now against the code the model's training set used."""
        history = self.registry.deployments(name)
        if not history:
            raise NotFoundError(f"deployment/{name} does not exist")
        current = history[-1]
        report = ReproduceReport(f"deployment/{name}")
        report.covers.append(f"deployment/{name}")
        model = self._model(current.model_identity)
        self.model(model, definitions, report)
        if model.training_dataset:
            td = self.training.record(model.training_dataset)
            run = self.registry.run(td.run_id) if td.run_id else None
            trained = (run.params if run else {}).get("code", {})
            served = self.catalog.get_feature_view(td.view, td.major)
            for o in served.on_demand:
                item = f"serving: on-demand {o.name}"
                report.add("code", item, trained.get(f"on-demand {o.name}", "absent"), o.code_hash)
            for key in set(trained) - {f"on-demand {o.name}" for o in served.on_demand}:
                report.add("code", f"serving: {key}", trained[key], "absent")
        return report


def _imports(fv: FeatureView, params: Mapping[str, Any]) -> list[str]:
    """The packages the view's code uses now (its recorded ones for code not loaded)."""
    found: set[str] = set()
    for o in fv.on_demand:
        if o.function is None:
            return list(params.get("imports", []))
        found.update(function_hash(o.function).packages)
    return sorted(found)


def _current_code(recorded: str, where: str) -> str:
    """The hash of recorded training code as it is now: a script re-hashed, a function
    re-imported from the file it was defined in (under a private module name)."""
    if recorded.startswith("sha256:"):
        path = Path(where)
        return f"sha256:{artifact_sha256(path)[:16]}" if path.is_file() else "missing"
    path_text, _, qualname = where.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        return "missing"
    fn = _load(path, qualname)
    return "unavailable" if fn is None else function_hash(fn).value


def _load(path: Path, qualname: str) -> Callable[..., Any] | None:
    spec = importlib.util.spec_from_file_location(f"_fl_code_{uuid.uuid4().hex}", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:  # the file no longer imports: its code cannot be hashed
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if callable(obj) else None


def verify_report(report: ReproduceReport) -> VerifyReport:
    """A training set's reproduce report as `verify` states it: every recorded hash that
    differs now (data, code, environment) and the rebuilt rows' content hash."""
    out = VerifyReport(
        report.identity, expected_hash=report.output_expected, actual_hash=report.output_actual
    )
    for factor in FACTORS:
        for item, recorded, current in report.differences(factor):
            if recorded != "not recorded":  # older records: nothing to compare with
                out.problems.append(f"{factor}: {item}: recorded {recorded}, now {current}")
    if report.output_actual is None:
        out.problems.append(f"cannot rebuild: {report.output_note}")
    elif report.output_matches is False:
        out.problems.append(
            f"rebuilt rows hash to {report.output_actual}, not the recorded "
            f"{report.output_expected}"
        )
    return out
