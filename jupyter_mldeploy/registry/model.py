"""``Model``: the Azure ML SDK v1 model API over a local workspace.

A v1 notebook ports by changing its imports::

    from jupyter_mldeploy import Workspace, Model

    ws = Workspace.from_config()
    model = Model.register(ws, model_path="sklearn_mnist_model.pkl", model_name="mnist",
                           tags={"area": "mnist"}, description="digits")
    Model(ws, "mnist").version                      # latest version
    Model(ws, id="mnist:1").download("out")        # -> "out/sklearn_mnist_model.pkl"
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.errors import InvalidArgument, MLDeployError, NotFound
from jupyter_mldeploy.names import parse_name_version, validate_name
from jupyter_mldeploy.registry.lineage import collect_lineage
from jupyter_mldeploy.registry.resource_configuration import ResourceConfiguration
from jupyter_mldeploy.registry.samples import SAMPLES_DIRNAME, SampleData, to_sample
from jupyter_mldeploy.registry.store import ModelRecord, ModelStore, NewModel
from jupyter_mldeploy.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from jupyter_mldeploy.deploy import DeploymentConfiguration, Webservice
    from jupyter_mldeploy.docker.package import ModelPackage
    from jupyter_mldeploy.inference_config import InferenceConfig

#: A v1 list filter: ``["key", ["key2", "value2"]]``; a dict ``{"key": "value"}`` is accepted too.
Filters = Sequence[str | Sequence[str]] | Mapping[str, str] | str | None


class Model:
    """A registered model version in a local workspace (v1 ``azureml.core.Model``).

    ``Model(workspace, name)`` loads the latest version, ``Model(workspace, name, version=2)`` or
    ``Model(workspace, id="name:2")`` a given one; with ``tags``/``properties`` the latest version matching
    them (v1 filters).

    Args:
        workspace: The workspace holding the model.
        name: Model name.
        id: ``"name:version"`` (v1 model id), instead of ``name``/``version``.
        tags: v1 filter, e.g. ``["stage", ["team", "vision"]]``.
        properties: v1 filter, same shape as ``tags``.
        version: Version number; the latest when None.

    Attributes:
        workspace (Workspace): The workspace.
        name (str): Model name.
        version (int): Version number.
        id (str): ``"name:version"``.
        tags (dict[str, str]): Mutable labels.
        properties (dict[str, str]): Add-only facts.
        description (str | None): Free text.
        created_time (datetime): Registration time, timezone-aware UTC.
        url (str): Local path of the version folder, ``<workspace>/models/<name>/<version>``.
        path (str): Full path of the registered file or folder inside the version folder.
        files (list[str]): Stored files, POSIX paths relative to ``url``.
        model_framework (str | None): v1 framework name (see :class:`Model.Framework`).
        model_framework_version (str | None): Framework version given at registration.
        sample_input (Any): The request body the sample input stands for (``{"data": rows}`` for a table, see
            :meth:`register`), or None. Read from the sample file on first use.
        sample_output (Any): The sample output as a JSON value (a list of predictions ...), or None.
        sample_input_dataset (SampleData | None): The sample input with its columns and types (v1's
            attribute name; ``.to_pandas_dataframe()`` as on v1's dataset).
        sample_output_dataset (SampleData | None): The same for the sample output.
        resource_configuration (ResourceConfiguration | None): The resources given at registration.
        lineage (dict[str, Any]): Where the model came from: time, user, Python, git commit, notebook.
        run_id (str | None): The run it was registered from (``run.register_model``), as v1 ``Model.run_id``.
        experiment_name (str | None): That run's experiment, as v1 ``Model.experiment_name``.

    Raises:
        InvalidArgument: For a bad name, id or version, or neither name nor id.
        NotFound: When the model or version does not exist; the message lists what does.
    """

    class Framework:
        """v1 ``Model.Framework`` names, accepted as ``model_framework``."""

        CUSTOM = "Custom"
        MLFLOW = "MLflow"
        MULTI = "Multi"
        ONNX = "Onnx"
        PYTORCH = "PyTorch"
        SCIKITLEARN = "ScikitLearn"
        TENSORFLOW = "TensorFlow"
        TFKERAS = "TfKeras"

    workspace: Workspace
    name: str
    version: int
    id: str
    tags: dict[str, str]
    properties: dict[str, str]
    description: str | None
    created_time: datetime
    url: str
    path: str
    files: list[str]
    model_framework: str | None
    model_framework_version: str | None
    lineage: dict[str, Any]
    run_id: str | None
    experiment_name: str | None
    resource_configuration: ResourceConfiguration | None

    def __init__(
        self,
        workspace: Workspace,
        name: str | None = None,
        id: str | None = None,
        tags: Filters = None,
        properties: Filters = None,
        version: int | None = None,
    ) -> None:
        _check_workspace(workspace)
        if isinstance(id, int) and not isinstance(id, bool) and version is None:
            # ``Model(ws, "name", 2)``: the positional form; a v1 id is always a "name:version" string.
            id, version = None, id
        if id is not None:
            id_name, id_version = parse_name_version(id, "model")
            if name is not None and name != id_name:
                raise InvalidArgument(f"Model name {name!r} and id {id!r} disagree; pass one of them.")
            if version is not None and id_version is not None and version != id_version:
                raise InvalidArgument(f"Model version {version!r} and id {id!r} disagree; pass one of them.")
            name, version = id_name, id_version if id_version is not None else version
        if name is None:
            raise InvalidArgument("Model(workspace, ...) needs a name or an id ('name:version').")
        validate_name(name, "model name")
        version = _check_version(version)
        store = ModelStore(workspace)
        tag_filters = _parse_filters(tags, "tags")
        property_filters = _parse_filters(properties, "properties")
        if tag_filters or property_filters:
            candidates = [
                r
                for r in store.list(name)
                if (version is None or r.version == version)
                and _matches(r.tags, tag_filters)
                and _matches(r.properties, property_filters)
            ]
            if not candidates:
                store.get(name, version)  # raises NotFound naming what exists when the name/version is absent
                raise NotFound(
                    f"No version of model '{name}' matches tags={tags!r} properties={properties!r}."
                )
            record = candidates[0]
        else:
            record = store.get(name, version)
        self._load(workspace, record)

    @classmethod
    def _from_record(cls, workspace: Workspace, record: ModelRecord) -> Model:
        model = cls.__new__(cls)
        model._load(workspace, record)
        return model

    def _load(self, workspace: Workspace, record: ModelRecord) -> None:
        store = ModelStore(workspace)
        version_dir = store.version_dir(record.name, record.version)
        self._record = record
        self.workspace = workspace
        self.name = record.name
        self.version = record.version
        self.id = record.id
        self.tags = dict(record.tags)
        self.properties = dict(record.properties)
        self.description = record.description
        self.created_time = record.created_time
        self.url = str(version_dir)
        self.path = str(version_dir / record.root)
        self.files = [f.path for f in record.files]
        self.model_framework = record.model_framework
        self.model_framework_version = record.model_framework_version
        self.lineage = dict(record.lineage)
        self.run_id = record.run_id
        self.experiment_name = record.experiment_name
        self.resource_configuration = (
            None if record.resource_configuration is None
            else ResourceConfiguration.deserialize(record.resource_configuration)
        )
        self._samples: dict[str, SampleData | None] = {}

    def _sample(self, which: str) -> SampleData | None:
        if which not in self._samples:
            self._samples[which] = ModelStore(self.workspace).read_sample(self._record, which)
        return self._samples[which]

    @property
    def sample_input_dataset(self) -> SampleData | None:
        """The sample input as stored, with its columns and types (v1 ``Model.sample_input_dataset``).

        Raises:
            IntegrityError: When the sample file was changed or removed since registration.
        """
        return self._sample("input")

    @property
    def sample_output_dataset(self) -> SampleData | None:
        """The sample output as stored, with its columns and types (v1 ``Model.sample_output_dataset``).

        Raises:
            IntegrityError: When the sample file was changed or removed since registration.
        """
        return self._sample("output")

    @property
    def sample_input(self) -> Any:
        """The request body the sample input stands for: ``{"data": rows}`` (records for named columns) for a
        table, the value itself for other JSON; a version registered before layout 3 returns what it stored.
        Trial runs, profiling, the endpoint tester and the drift table send or read it."""
        if self._record.sample_input is not None and "input" not in self._record.samples:
            return self._record.sample_input
        sample = self._sample("input")
        return None if sample is None else sample.request_body()

    @property
    def sample_output(self) -> Any:
        """The sample output as a JSON value (records, rows or a list of values for a table), or None."""
        sample = self._sample("output")
        return None if sample is None else sample.value()

    # -- registration ---------------------------------------------------------------------------------

    @staticmethod
    def register(
        workspace: Workspace,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        child_paths: Sequence[str | os.PathLike[str]] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        sample_input: Any = None,
        run_id: str | None = None,
        experiment_name: str | None = None,
        sample_output: Any = None,
        resource_configuration: ResourceConfiguration | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
    ) -> Model:
        """Register a file or folder as the next version of ``model_name`` (v1 ``Model.register``).

        The content keeps the basename of ``model_path``: ``./outputs/model.pkl`` is stored as
        ``model.pkl`` at the version's root, ``./models`` as ``models/...``. Files are copied into
        ``<workspace>/models/<name>/<version>/``, made read-only, and their sha256 and size recorded. The
        new version is visible only once complete (see :mod:`jupyter_mldeploy.registry.store`).

        Args:
            workspace: The workspace to register into.
            model_path: A file or a folder.
            model_name: ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$``.
            tags: ``str -> str`` labels (changeable later).
            properties: ``str -> str`` facts (add-only later).
            description: Free text.
            child_paths: For a folder, keep only these files or sub-folders (paths relative to it).
            model_framework: v1 framework name, e.g. ``Model.Framework.SCIKITLEARN``.
            model_framework_version: Its version; needs ``model_framework``.
            sample_input: A sample of the input (v1 took a dataset): a pandas DataFrame, a numpy array, a
                list of rows, records or values (a table, whose column names and types are kept), any of these
                as ``{"data": ...}``, or another JSON-safe value. Stored in the version folder
                (``.mldeploy-samples/sample_input.json``, format in :mod:`jupyter_mldeploy.registry.samples`);
                a no-code deployment's swagger schema is built from it.
            run_id: The run the model comes from, recorded as the lineage link model -> run. Set by
                ``Run.register_model`` (jupyter_mldeploy.runs), which checks the run exists; not checked here.
            experiment_name: That run's experiment; needs ``run_id``.
            sample_output: The model's answer to ``sample_input``, in the same forms (e.g.
                ``model.predict(X_sample)``); needs ``sample_input``.
            resource_configuration: ``ResourceConfiguration(cpu=..., memory_in_gb=..., gpu=None)``: what the
                model needs; a no-code deployment without resources in its deployment configuration uses it
                (v1).
            sample_input_dataset: v1's name of ``sample_input`` (give one of the two).
            sample_output_dataset: v1's name of ``sample_output`` (give one of the two).

        Returns:
            The new version.

        Raises:
            InvalidArgument: For a bad name, non-string tags or properties, ``child_paths`` that escape the
                folder or do not exist, a framework version without a framework, a sample that cannot be
                stored (empty, not JSON-safe), a sample output without a sample input or with another number
                of rows, or a ``resource_configuration`` that is not a ``ResourceConfiguration``.
            NotFound: When ``model_path`` does not exist.
        """
        _check_workspace(workspace)
        validate_name(model_name, "model name")
        tags = _check_str_dict(tags, "tags")
        properties = _check_str_dict(properties, "properties")
        if description is not None and not isinstance(description, str):
            raise InvalidArgument(f"description must be a string, got {type(description).__name__}.")
        if model_framework is None and model_framework_version is not None:
            raise InvalidArgument(
                "model_framework_version needs model_framework (e.g. Model.Framework.SCIKITLEARN)."
            )
        for value, what in ((model_framework, "model_framework"), (model_framework_version, "model_framework_version")):
            if value is not None and not isinstance(value, str):
                raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}.")
        samples = _check_samples(sample_input, sample_output, sample_input_dataset, sample_output_dataset)
        if resource_configuration is not None and not isinstance(resource_configuration, ResourceConfiguration):
            raise InvalidArgument(
                "resource_configuration must be a ResourceConfiguration, e.g. "
                "ResourceConfiguration(cpu=1, memory_in_gb=0.5) (from jupyter_mldeploy import ResourceConfiguration), "
                f"not {type(resource_configuration).__name__}."
            )
        if experiment_name is not None and run_id is None:
            raise InvalidArgument("experiment_name needs run_id: register from a run with run.register_model(...).")
        for value, what in ((run_id, "run_id"), (experiment_name, "experiment_name")):
            if value is not None:
                validate_name(value, what.replace("_", " "))
        source = Path(os.path.abspath(os.fspath(model_path)))
        root, is_folder, entries = _plan_files(source, model_path, child_paths, workspace)
        now = datetime.now(timezone.utc)
        record = ModelStore(workspace).register(
            NewModel(
                name=model_name,
                root=root,
                is_folder=is_folder,
                entries=tuple(entries),
                description=description,
                tags=tags,
                properties=properties,
                created_time=now,
                model_framework=model_framework,
                model_framework_version=model_framework_version,
                sample_input=samples[0],
                lineage=collect_lineage(source, model_framework, now),
                run_id=run_id,
                experiment_name=experiment_name,
                sample_output=samples[1],
                resource_configuration=None if resource_configuration is None else resource_configuration.serialize(),
            )
        )
        return Model._from_record(workspace, record)

    # -- listing --------------------------------------------------------------------------------------

    @staticmethod
    def list(
        workspace: Workspace,
        name: str | None = None,
        tags: Filters = None,
        properties: Filters = None,
        latest: bool = False,
        run_id: str | None = None,
    ) -> list[Model]:
        """List registered versions (v1 ``Model.list``).

        Args:
            workspace: The workspace.
            name: Only this model's versions.
            tags: v1 filter: ``["key"]`` (has the tag), ``[["key", "value"]]`` (tag equals value), or a mix;
                every item must match.
            properties: Same shape as ``tags``, on properties.
            latest: Keep only the highest matching version of each name.
            run_id: Only versions registered from this run (v1 ``run_id`` filter): the lineage run -> models.

        Returns:
            Models sorted by name, newest version first.

        Raises:
            InvalidArgument: For a bad name or a filter of another shape.
        """
        _check_workspace(workspace)
        if name is not None:
            validate_name(name, "model name")
        tag_filters = _parse_filters(tags, "tags")
        property_filters = _parse_filters(properties, "properties")
        found: list[Model] = []
        seen: set[str] = set()
        for record in ModelStore(workspace).list(name, run_id=run_id):
            if not (_matches(record.tags, tag_filters) and _matches(record.properties, property_filters)):
                continue
            if latest and record.name in seen:
                continue
            seen.add(record.name)
            found.append(Model._from_record(workspace, record))
        return found

    @staticmethod
    def list_frame(
        workspace: Workspace,
        name: str | None = None,
        tags: Filters = None,
        properties: Filters = None,
        latest: bool = False,
    ) -> pandas.DataFrame:
        """Return :meth:`list` as a pandas DataFrame for display in a notebook.

        Returns:
            One row per version; columns ``name, version, id, created_time, framework, description, tags,
            properties, files, size_bytes, run_id, experiment_name, url`` (``tags``/``properties`` hold
            dicts).
        """
        import pandas

        columns = [
            "name", "version", "id", "created_time", "framework", "description",
            "tags", "properties", "files", "size_bytes", "run_id", "experiment_name", "url",
        ]
        rows = [
            {
                "name": m.name,
                "version": m.version,
                "id": m.id,
                "created_time": m.created_time,
                "framework": m.model_framework,
                "description": m.description,
                "tags": m.tags,
                "properties": m.properties,
                "files": len(m.files),
                "size_bytes": sum(f.size for f in m._record.files),
                "run_id": m.run_id,
                "experiment_name": m.experiment_name,
                "url": m.url,
            }
            for m in Model.list(workspace, name=name, tags=tags, properties=properties, latest=latest)
        ]
        return pandas.DataFrame(rows, columns=columns)

    # -- operations on one version --------------------------------------------------------------------

    def download(self, target_dir: str | os.PathLike[str] = ".", exist_ok: bool = False) -> str:
        """Copy the model into ``target_dir``, verifying every file's sha256 on the way out.

        Args:
            target_dir: Folder to write into (created when missing).
            exist_ok: Replace what exists under the model's name in ``target_dir``.

        Returns:
            The path written: the file for a single-file model, the folder for a folder model (v1).

        Raises:
            Conflict: When the destination exists and ``exist_ok`` is False.
            IntegrityError: When a stored file was changed or removed since registration; nothing is
                written then.
        """
        return str(ModelStore(self.workspace).download(self._record, Path(target_dir), exist_ok))

    def delete(self, force: bool = False) -> None:
        """Delete this version's files and records.

        Args:
            force: Delete even when a service uses this version.

        Raises:
            Conflict: When a service uses this version and ``force`` is False; the message names it.
            NotFound: When the version was already deleted.
        """
        ModelStore(self.workspace).delete(self.name, self.version, force=force)

    def add_tags(self, tags: Mapping[str, str]) -> None:
        """Add or change tags (v1 ``add_tags``).

        Raises:
            InvalidArgument: When a key or value is not a string.
        """
        self.tags = ModelStore(self.workspace).update_tags(self.name, self.version, _check_str_dict(tags, "tags"), [])

    def remove_tags(self, tags: Iterable[str]) -> None:
        """Remove tags by key; keys that are not set are ignored (v1 ``remove_tags``).

        Raises:
            InvalidArgument: When ``tags`` is not a list of strings.
        """
        if isinstance(tags, str) or not all(isinstance(k, str) for k in tags):
            raise InvalidArgument("remove_tags takes a list of tag keys, e.g. ['stage'].")
        self.tags = ModelStore(self.workspace).update_tags(self.name, self.version, {}, list(tags))

    def add_properties(self, properties: Mapping[str, str]) -> None:
        """Add properties; existing ones cannot change (v1: properties are add-only).

        Raises:
            InvalidArgument: When a key exists with another value, or a key or value is not a string.
        """
        self.properties = ModelStore(self.workspace).add_properties(
            self.name, self.version, _check_str_dict(properties, "properties")
        )

    def serialize(self) -> dict[str, Any]:
        """Return a JSON-safe dict of this version (the stable ``-o json`` shape of the CLI).

        Returns:
            Keys ``name, version, id, tags, properties, description, createdTime`` (ISO 8601 UTC), ``url``,
            ``files`` (list of ``{path, size, sha256}``), ``modelFramework, modelFrameworkVersion,
            sampleInput`` (:attr:`sample_input`), ``sampleOutput``, ``sampleInputDatasetId`` and
            ``sampleOutputDatasetId`` (v1's keys; here the sample file's path relative to ``url``, or None),
            ``resourceConfiguration`` (v1's ``{cpu, memoryInGB, gpu}``, or None), ``lineage, runId,
            experimentName``.
        """
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "tags": dict(self.tags),
            "properties": dict(self.properties),
            "description": self.description,
            "createdTime": self.created_time.isoformat(),
            "url": self.url,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self._record.files],
            "modelFramework": self.model_framework,
            "modelFrameworkVersion": self.model_framework_version,
            "sampleInput": self.sample_input,
            "sampleOutput": self.sample_output,
            "sampleInputDatasetId": _sample_file(self._record, "input"),
            "sampleOutputDatasetId": _sample_file(self._record, "output"),
            "resourceConfiguration": None if self.resource_configuration is None
            else self.resource_configuration.serialize(),
            "lineage": dict(self.lineage),
            "runId": self.run_id,
            "experimentName": self.experiment_name,
        }

    # -- v1 static helpers ----------------------------------------------------------------------------

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Workspace | None = None) -> str:
        """Return the path of a model's registered file or folder (v1 ``Model.get_model_path``).

        With ``_workspace``: the registered entry inside that workspace. Without (as in ``score.py``):
        the scoring container's rules, ``azureml-models/<name>/<version>/<entry>`` under the app root, else
        ``./<name>`` (see :func:`jupyter_mldeploy.server.model_path.get_model_path`).

        Args:
            model_name: The model name.
            version: An int; the latest when None.
            _workspace: A workspace to look the model up in.

        Raises:
            InvalidArgument: For a bad name or a version that is not an int.
            NotFound: When no such model is found; the message says where it looked.
            MLDeployError: When the version folder holds more than one entry.
        """
        if _workspace is not None:
            return Model(_workspace, model_name, version=version).path
        from jupyter_mldeploy.server.model_path import AmbiguousModelPath, ModelPathNotFound
        from jupyter_mldeploy.server.model_path import get_model_path as lookup

        try:
            return lookup(model_name, version)
        except ModelPathNotFound as exc:
            raise NotFound(str(exc)) from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, AmbiguousModelPath):
                raise MLDeployError(str(exc)) from exc
            raise InvalidArgument(str(exc)) from exc

    @staticmethod
    def deploy(
        workspace: Workspace,
        name: str,
        models: Sequence[Model | str] | None,
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfiguration | None = None,
        overwrite: bool = False,
        show_output: bool = False,
        deployment_target: Any = None,
    ) -> Webservice:
        """Deploy models as a service (v1 ``Model.deploy``); see :func:`jupyter_mldeploy.deploy.deploy_model`."""
        from jupyter_mldeploy.deploy import deploy_model  # v1 façade forwarder

        return deploy_model(workspace, name, models, inference_config, deployment_config, overwrite, show_output,
                            deployment_target)

    @staticmethod
    def package(
        workspace: Workspace,
        models: Sequence[Model | str],
        inference_config: Any = None,
        generate_dockerfile: bool = False,
        image_name: str | None = None,
    ) -> ModelPackage:
        """Package models, code and environment as a Docker image (v1 ``Model.package``); see
        :func:`jupyter_mldeploy.docker.package.package_models`."""
        from jupyter_mldeploy.docker.package import package_models  # v1 façade forwarder

        return package_models(workspace, models, inference_config, generate_dockerfile, image_name)

    @staticmethod
    def profile(
        workspace: Workspace,
        profile_name: str,
        models: Sequence[Model | str],
        inference_config: Any,
        input_dataset: Any,
        cpu: float | None = None,
        memory_in_gb: float | None = None,
        description: str | None = None,
        **options: Any,
    ) -> Any:
        """Profile models on a temporary service (v1 ``Model.profile``); see
        :func:`jupyter_mldeploy.deploy.profile.profile_model` (``options``: ours, e.g. ``seconds_per_level``).
        Returns a ``ModelProfile``."""
        from jupyter_mldeploy.deploy.profile import profile_model  # v1 façade forwarder

        return profile_model(workspace, profile_name, models, inference_config, input_dataset, cpu, memory_in_gb,
                             description, **options)

    @staticmethod
    def list_profiles(workspace: Workspace) -> list[Any]:
        """The workspace's stored model profiles, by name; see :func:`jupyter_mldeploy.deploy.profile.list_profiles`."""
        from jupyter_mldeploy.deploy.profile import list_profiles  # v1 façade forwarder

        return list_profiles(workspace)

    # -- display --------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Model(workspace={self.workspace!r}, name={self.name!r}, id={self.id!r}, version={self.version}, "
            f"tags={self.tags!r}, properties={self.properties!r})"
        )

    def _repr_html_(self) -> str:
        size = sum(f.size for f in self._record.files)
        rows = [
            ("Name", self.name),
            ("Version", str(self.version)),
            ("Created", self.created_time.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("Description", self.description or ""),
            ("Tags", ", ".join(f"{k}={v}" for k, v in self.tags.items())),
            ("Properties", ", ".join(f"{k}={v}" for k, v in self.properties.items())),
            ("Framework", " ".join(x for x in (self.model_framework, self.model_framework_version) if x)),
            ("Resources", _resources_text(self.resource_configuration)),
            ("Files", f"{len(self.files)} ({size:,} bytes)"),
            ("Run", f"{self.experiment_name} / {self.run_id}" if self.run_id else ""),
            ("Path", self.path),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table class='mldeploy-model'>{body}</table>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and (other.workspace, other.id) == (self.workspace, self.id)

    def __hash__(self) -> int:
        return hash((self.workspace, self.id))


# -- validation helpers -------------------------------------------------------------------------------


def _check_workspace(workspace: object) -> None:
    if not isinstance(workspace, Workspace):
        raise InvalidArgument(
            f"workspace must be a jupyter_mldeploy Workspace, got {type(workspace).__name__}; use "
            "Workspace.from_config()."
        )


def _check_version(version: object) -> int | None:
    if version is None:
        return None
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidArgument(f"Invalid model version {version!r}: use a positive integer (1, 2, 3 ...).")
    return version


def _check_str_dict(value: Mapping[str, str] | None, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a dict of strings, e.g. {{'stage': 'dev'}}; got {type(value).__name__}.")
    checked: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"{what} keys must be non-empty strings; got {key!r}.")
        if not isinstance(item, str):
            raise InvalidArgument(
                f"{what}[{key!r}] is a {type(item).__name__}; {what} values must be strings: pass str({item!r})."
            )
        checked[key] = item
    return checked


def _check_samples(
    sample_input: Any, sample_output: Any, input_dataset: Any, output_dataset: Any
) -> tuple[SampleData | None, SampleData | None]:
    """Check and convert the samples given to ``register`` (v1 names included)."""
    for ours, theirs, name in ((sample_input, input_dataset, "sample_input"),
                               (sample_output, output_dataset, "sample_output")):
        if ours is not None and theirs is not None:
            raise InvalidArgument(f"Give {name} or {name}_dataset (v1's name), not both.")
    given_input = sample_input if sample_input is not None else input_dataset
    given_output = sample_output if sample_output is not None else output_dataset
    if given_output is not None and given_input is None:
        raise InvalidArgument(
            "sample_output needs sample_input: give the input rows the sample output answers "
            "(Model.register(..., sample_input=X_sample, sample_output=model.predict(X_sample)))."
        )
    parsed_input = to_sample(given_input, "sample_input")
    parsed_output = to_sample(given_output, "sample_output")
    if parsed_input is not None and parsed_output is not None and "table" == parsed_input.kind == parsed_output.kind \
            and len(parsed_input.data) != len(parsed_output.data):
        raise InvalidArgument(
            f"sample_output has {len(parsed_output.data)} rows but sample_input has {len(parsed_input.data)}: give "
            "one answer per sample row (sample_output=model.predict(sample_input))."
        )
    return parsed_input, parsed_output


def _resources_text(resources: ResourceConfiguration | None) -> str:
    if resources is None:
        return ""
    parts = (("cpu", resources.cpu, ""), ("memory", resources.memory_in_gb, " GB"), ("gpu", resources.gpu, ""))
    return ", ".join(f"{label} {value:g}{unit}" for label, value, unit in parts if value is not None)


def _sample_file(record: ModelRecord, which: str) -> str | None:
    stored = record.samples.get(which)
    return None if stored is None else stored.path


def _parse_filters(filters: Filters, what: str) -> list[tuple[str, str | None]]:
    if filters is None:
        return []
    if isinstance(filters, str):
        return [(filters, None)]
    if isinstance(filters, Mapping):
        return [(str(k), str(v)) for k, v in filters.items()]
    parsed: list[tuple[str, str | None]] = []
    for item in filters:
        if isinstance(item, str):
            parsed.append((item, None))
        elif isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item):
            parsed.append((item[0], item[1]))
        else:
            raise InvalidArgument(
                f"Bad {what} filter {item!r}: use 'key' or ['key', 'value'], e.g. {what}=['a', ['b', 'x']]."
            )
    return parsed


def _matches(values: Mapping[str, str], filters: list[tuple[str, str | None]]) -> bool:
    return all(key in values and (wanted is None or values[key] == wanted) for key, wanted in filters)


def _plan_files(
    source: Path,
    given: str | os.PathLike[str],
    child_paths: Sequence[str | os.PathLike[str]] | None,
    workspace: Workspace,
) -> tuple[str, bool, list[tuple[Path, str]]]:
    """Decide what to copy: ``(root basename, is_folder, [(source file, destination relative path)])``."""
    if not source.exists():
        raise NotFound(
            f"model_path {os.fspath(given)!r} does not exist (looked at {source}); pass the path of the "
            "model file or folder to register."
        )
    root = source.name
    if not root:
        raise InvalidArgument(f"model_path {os.fspath(given)!r} is a file system root; pass a file or folder.")
    if root == SAMPLES_DIRNAME:
        raise InvalidArgument(
            f"model_path {os.fspath(given)!r} is named {SAMPLES_DIRNAME}, the name of the folder that holds a "
            "version's samples: rename it, or register the folder that contains it."
        )
    if source.is_file():
        if child_paths:
            raise InvalidArgument("child_paths only applies when model_path is a folder.")
        return root, False, [(source, root)]
    if not source.is_dir():
        raise InvalidArgument(f"model_path {os.fspath(given)!r} is neither a regular file nor a folder.")
    skip = {workspace.path}
    if child_paths is None:
        relatives = _folder_files(source, skip)
    else:
        if isinstance(child_paths, (str, os.PathLike)):
            raise InvalidArgument("child_paths must be a list of paths, e.g. ['weights.bin', 'config.json'].")
        relatives = []
        for child in child_paths:
            relatives.extend(_child_files(source, child, skip))
    unique = sorted(set(relatives))
    return root, True, [(source / rel, f"{root}/{rel}") for rel in unique]


def _child_files(folder: Path, child: str | os.PathLike[str], skip: set[Path]) -> list[str]:
    raw = os.fspath(child)
    candidate = Path(raw)
    if candidate.is_absolute():
        try:
            candidate = Path(os.path.abspath(candidate)).relative_to(folder)
        except ValueError:
            raise InvalidArgument(
                f"child_paths entry {raw!r} is outside the model folder {folder}; give paths inside it."
            ) from None
    normal = os.path.normpath(candidate)
    if normal == os.curdir:
        return _folder_files(folder, skip)
    if normal == os.pardir or normal.startswith(os.pardir + os.sep):
        raise InvalidArgument(
            f"child_paths entry {raw!r} escapes the model folder {folder}; give paths inside it."
        )
    target = folder / normal
    if target.is_file():
        return [Path(normal).as_posix()]
    if target.is_dir():
        return [f"{Path(normal).as_posix()}/{rel}" for rel in _folder_files(target, skip)]
    raise InvalidArgument(f"child_paths entry {raw!r} does not exist in the model folder {folder}.")


def _folder_files(folder: Path, skip: set[Path]) -> list[str]:
    """Relative POSIX paths of every regular file under ``folder``, following symlinks without looping."""
    found: list[str] = []
    visited: set[str] = set()
    for current, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in visited or Path(current).resolve() in skip:
            dirs[:] = []
            continue
        visited.add(real)
        dirs.sort()
        for file_name in sorted(names):
            path = Path(current) / file_name
            if path.is_symlink() and not path.exists():
                raise InvalidArgument(f"{path} is a broken symbolic link; fix or remove it before registering.")
            if path.is_file():
                found.append(path.relative_to(folder).as_posix())
    return found
