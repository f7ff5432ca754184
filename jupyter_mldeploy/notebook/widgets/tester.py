"""``EndpointTester``: pick a service and a protocol, edit a JSON request, send it, see status, response and
latency."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from jupyter_mldeploy import actions
from jupyter_mldeploy.errors import MLDeployError
from jupyter_mldeploy.notebook.widgets._common import (
    ERROR_COLOR,
    OK_COLOR,
    MessageLine,
    button,
    pre,
    reported,
    resolve_workspace,
)
from jupyter_mldeploy.workspace import Workspace


def request_text(value: Any) -> str:
    """JSON for the request editor: one top-level key per line, each value compact (rows stay rows)."""
    if isinstance(value, dict) and value:
        lines = [f"  {json.dumps(key)}: {json.dumps(item)}" for key, item in value.items()]
        return "{\n" + ",\n".join(lines) + "\n}"
    return json.dumps(value)


#: The protocol choices, as (label, ``actions.PROTOCOLS`` value); the sidebar offers the same three.
PROTOCOL_CHOICES = (("Azure ML /score", "azureml"), ("Open Inference V2", "v2"), ("MLflow /invocations", "mlflow"))


class EndpointTester(widgets.VBox):
    """Send a request to a service and show what came back.

    The request editor is prefilled from the service's input schema example (an inference-schema decorated
    ``run``) or else the served model's ``sample_input``, its floats rounded as the sidebar shows them, and
    shaped for the chosen protocol (:func:`jupyter_mldeploy.actions.example_payload` with ``rounded=True`` and
    ``protocol``): ``/score``, Open Inference Protocol V2 (``/v2/models/<model>/infer``) or MLflow
    (``/invocations``). Sending goes through :func:`jupyter_mldeploy.actions.call_endpoint`, as
    ``%test_endpoint --protocol`` and the sidebar do: a ``/score`` body is checked against the schema and a
    mismatching field is named instead of sending; a service with key auth gets its key.

    Args:
        workspace: A ``Workspace``, a folder, or None for ``Workspace.from_config()``.

    Attributes:
        service_select (Dropdown): The services of the workspace.
        protocol (Dropdown): ``azureml``, ``v2`` or ``mlflow``; changing it prefills that protocol's example.
        request (Textarea): The JSON request body.
        repeat (BoundedIntText): How many times to send it (p50/p99 shown when > 1).
        send_button (Button): Sends the request.
        status (HTML): Status code, latency and the URI called (or the check's error).
        response (HTML): The pretty-printed response.
        last_call (EndpointCall | None): The last call, as the service layer reported it.
        last_response (ScoringResponse | None): The last answer.
        last_report (LatencyReport | None): The last load test, when ``repeat`` > 1.
    """

    def __init__(self, workspace: Workspace | str | Path | None = None) -> None:
        self.workspace = resolve_workspace(workspace)
        self.last_call: actions.EndpointCall | None = None
        self.last_response: Any = None
        self.last_report: Any = None
        self.service_select = widgets.Dropdown(description="Service", options=[])
        self.protocol = widgets.Dropdown(description="Protocol", options=PROTOCOL_CHOICES, value="azureml")
        self.refresh_button = button("Refresh", lambda _: self.refresh(), icon="refresh")
        self.example_button = button("Reset to example", lambda _: self.prefill(), icon="magic")
        self.request = widgets.Textarea(placeholder='{"data": [[1, 2, 3]]}',
                                        layout=widgets.Layout(width="100%", height="10em"))
        self.repeat = widgets.BoundedIntText(value=1, min=1, max=10_000, description="Repeat")
        self.send_button = button("Send", self._on_send, style="primary", icon="paper-plane")
        self.status = widgets.HTML()
        self.response = widgets.HTML()
        self.message = MessageLine()
        self.service_select.observe(lambda change: self.prefill() if change.get("new") else None, names="value")
        self.protocol.observe(lambda _change: self.prefill(), names="value")
        super().__init__(children=[
            widgets.HBox([self.service_select, self.protocol, self.refresh_button, self.example_button],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.request,
            widgets.HBox([self.repeat, self.send_button]),
            self.message,
            self.status,
            self.response,
        ])
        self.refresh()

    def refresh(self) -> None:
        """Reload the list of services (keeping the selection when it still exists)."""
        with reported(self.message):
            names = actions.service_names(self.workspace)
            current = self.service_select.value
            self.service_select.options = names
            if current in names:
                self.service_select.value = current
            elif names:
                self.service_select.value = names[0]
            else:
                self.message.info("No services yet: deploy one first.")

    def prefill(self) -> None:
        """Put the schema's example (or the model's ``sample_input``), in the chosen protocol's format, into the
        request editor; the previous answer goes (it belonged to another request)."""
        if not self.service_select.value:
            return
        self.status.value = self.response.value = ""
        with reported(self.message):
            endpoint = actions.resolve_endpoint(self.service_select.value, self.workspace)
            example = actions.example_payload(endpoint, rounded=True, protocol=self.protocol.value)
            if example is not None:
                self.request.value = request_text(example)
                self.message.clear()
            else:
                self.message.info("The service offers no example: write the request body.")

    def _on_send(self, _button: Any = None) -> None:
        self.message.clear()
        self.response.value = ""
        if not self.service_select.value:
            self._fail("Pick a service first.")
            return
        try:
            payload = json.loads(self.request.value)
        except json.JSONDecodeError as exc:
            self._fail(f"The request is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.")
            return
        try:
            call = actions.call_endpoint(self.service_select.value, payload, self.workspace,
                                         repeat=int(self.repeat.value), protocol=self.protocol.value)
        except MLDeployError as exc:
            self._fail(exc.summary)
            return
        self.last_call, self.last_report, self.last_response = call, call.report, call.response
        self._show(call)

    def _fail(self, text: str) -> None:
        self.status.value = f"<span style='color:{ERROR_COLOR}'>{html.escape(text)}</span>"

    def _show(self, call: actions.EndpointCall) -> None:
        color = OK_COLOR if call.ok else ERROR_COLOR
        self.status.value = (f"<b style='color:{color}'>{html.escape(call.status_line())}</b> "
                             f"<code>POST {html.escape(call.target)}</code>")
        if call.response is not None:
            self.response.value = pre(call.pretty_body())


__all__ = ["PROTOCOL_CHOICES", "EndpointTester"]
