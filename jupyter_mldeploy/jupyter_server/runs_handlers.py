"""REST handlers of the sidebar's Runs section, under ``<base_url>/mldeploy/api/`` (issue #17).

=====  ==================================  =====================================================
verb   path                                answer
=====  ==================================  =====================================================
GET    ``runs[?experiment=E&limit=N]``     ``{runs: [row, ...], experiments: [name, ...]}``
GET    ``runs/{id}``                       one run: :func:`jupyter_mldeploy.actions.show_run`
=====  ==================================  =====================================================

Both only read (runs may be logging meanwhile) and go through :class:`MLDeployHandler` as every other
route: authenticated verbs, the core call in a worker thread, an ``MLDeployError`` answered as its JSON with
its status (a malformed run id or limit is 400, an unknown run or experiment 404).
"""

from __future__ import annotations

from typing import Any

import tornado.web

from jupyter_mldeploy import actions
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.jupyter_server.handlers import API_PREFIX, MLDeployHandler
from jupyter_mldeploy.workspace import Workspace

_RUN_ID = r"(?P<run_id>[^/]+)"


def runs_listing(workspace: Workspace, experiment: str, limit: str) -> dict[str, Any]:
    """The ``runs`` route's answer from its raw query arguments.

    Args:
        workspace: The workspace.
        experiment: ``?experiment=``: only this experiment's runs; ``""`` for all.
        limit: ``?limit=``: a whole number of runs, or ``""`` for the default bound.

    Returns:
        ``{"runs": [...], "experiments": [...]}``: the rows of :func:`jupyter_mldeploy.actions.list_runs` and
        every experiment's name (the choices of the sidebar's filter).

    Raises:
        InvalidArgument: For a limit that is not a whole number in range, or a bad experiment name.
        NotFound: For an unknown experiment.
    """
    count: int | None = None
    if limit.strip():
        try:
            count = int(limit)
        except ValueError:
            raise InvalidArgument(
                f"Query argument limit={limit!r} must be a whole number of runs from 1 to {actions.MAX_RUNS}."
            ) from None
    return {
        "runs": actions.list_runs(workspace, experiment.strip() or None, count),
        "experiments": actions.experiment_names(workspace),
    }


class RunsHandler(MLDeployHandler):
    """``GET runs``: runs newest first, with status, parameters, last scalar metrics and registered models."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"runs": [...], "experiments": [...]}``; 400 for a bad limit, 404 for an unknown
        experiment."""
        experiment = self.get_query_argument("experiment", "")
        limit = self.get_query_argument("limit", "")
        ws = await self.workspace()
        self.write_json(await self.core(runs_listing, ws, experiment, limit))


class RunHandler(MLDeployHandler):
    """``GET runs/{id}``: one run with every metric, its files and the models registered from it."""

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        """Answer :func:`jupyter_mldeploy.actions.show_run`; 400 for a malformed id, 404 for an unknown run."""
        ws = await self.workspace()
        self.write_json(await self.core(actions.show_run, ws, run_id))


def runs_route_table() -> list[tuple[str, type[MLDeployHandler]]]:
    """Return the runs routes as ``(pattern, handler)`` pairs relative to the server's ``base_url``."""
    return [(f"{API_PREFIX}/runs", RunsHandler), (f"{API_PREFIX}/runs/{_RUN_ID}", RunHandler)]
