"""The service layer every face calls: one definition of each thing a user does.

The notebook magics and panel (:mod:`jupyter_mldeploy.notebook`), the ``mldeploy`` CLI
(:mod:`jupyter_mldeploy.cli`) and the sidebar's REST handlers (:mod:`jupyter_mldeploy.jupyter_server`) parse
their input, call one function here, and render what it returns (as jupyterlab-git's handlers take a domain
object and jupysql's ``magic.py`` only parses). This package belongs to the core: it imports no IPython,
ipywidgets, tornado or jupyter_server, and reaches the deploy layer only through its public API.

- :mod:`.models`: list (rows, groups), get, register (tags parsed one way), delete.
- :mod:`.services`: deploy (no-code for a model registered with a framework), list (rows with uptime), get,
  logs, reload, delete.
- :mod:`.endpoint`: call a service through ``/score``, V2 or MLflow with input-schema validation and an
  optional bounded load test; example bodies, shaped for each protocol.
- :mod:`.runs`: experiment runs listed and shown (status, parameters, metrics, registered models).
- :mod:`.environments`: choose an environment from ``--env``/``--requirements``/``--current``.
- :mod:`.tags`: ``KEY=VALUE`` pairs (tags, properties, filters).
- :mod:`.formats`: times (local, to the second), durations, sizes.
- :mod:`.workspaces`: the workspaces this user has used, most recent first (``mldeploy workspace list``).

Workspace resolution is :func:`jupyter_mldeploy.workspace.locate_workspace` (re-exported here) with
``Workspace.from_config(path, create=...)``: reading faces pass ``create=False``.
"""

from __future__ import annotations

from jupyter_mldeploy.actions.endpoint import (
    MAX_CONCURRENCY,
    MAX_REPEAT,
    PROTOCOLS,
    Endpoint,
    EndpointCall,
    RequestMismatch,
    ServiceUnreachable,
    call_endpoint,
    check_request,
    example_payload,
    input_schema,
    is_scoring_uri,
    protocol_payload,
    protocol_uri,
    resolve_endpoint,
)
from jupyter_mldeploy.actions.environments import choose_environment, environment_dicts
from jupyter_mldeploy.actions.formats import format_duration, format_size, format_time, parse_time
from jupyter_mldeploy.actions.jobs import list_jobs
from jupyter_mldeploy.actions.models import (
    ModelRow,
    check_model_path,
    delete_model,
    get_model,
    list_models,
    model_groups,
    model_row,
    model_rows,
    register_model,
)
from jupyter_mldeploy.actions.runs import MAX_RUNS, experiment_names, list_runs, show_run
from jupyter_mldeploy.actions.services import (
    ServiceRow,
    check_service_name,
    delete_service,
    deploy_service,
    deployment_inference_config,
    deployment_notes,
    get_service,
    list_services,
    reload_service,
    service_dicts,
    service_logs,
    service_names,
    service_row,
)
from jupyter_mldeploy.actions.tags import parse_filters, parse_key_values, parse_tags
from jupyter_mldeploy.actions.workspaces import (
    MAX_RECENT_WORKSPACES,
    RecentWorkspace,
    recent_workspace_dicts,
    recent_workspaces,
    remember_workspace,
)
from jupyter_mldeploy.workspace import WorkspaceLocation, locate_workspace

__all__ = [
    "list_jobs",
    "MAX_CONCURRENCY",
    "MAX_RECENT_WORKSPACES",
    "MAX_REPEAT",
    "MAX_RUNS",
    "PROTOCOLS",
    "Endpoint",
    "EndpointCall",
    "ModelRow",
    "RecentWorkspace",
    "RequestMismatch",
    "ServiceRow",
    "ServiceUnreachable",
    "WorkspaceLocation",
    "call_endpoint",
    "check_model_path",
    "check_service_name",
    "check_request",
    "choose_environment",
    "delete_model",
    "delete_service",
    "deploy_service",
    "deployment_inference_config",
    "deployment_notes",
    "environment_dicts",
    "experiment_names",
    "example_payload",
    "format_duration",
    "format_size",
    "format_time",
    "get_model",
    "get_service",
    "input_schema",
    "is_scoring_uri",
    "list_models",
    "list_runs",
    "list_services",
    "locate_workspace",
    "model_groups",
    "model_row",
    "model_rows",
    "parse_filters",
    "parse_key_values",
    "parse_tags",
    "parse_time",
    "protocol_payload",
    "protocol_uri",
    "recent_workspace_dicts",
    "recent_workspaces",
    "register_model",
    "reload_service",
    "remember_workspace",
    "resolve_endpoint",
    "service_dicts",
    "service_logs",
    "service_names",
    "service_row",
    "show_run",
]
