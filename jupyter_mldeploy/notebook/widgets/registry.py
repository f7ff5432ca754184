"""``RegistryPanel``: browse registered models and act on one version (download, delete, deploy)."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from jupyter_mldeploy import actions
from jupyter_mldeploy.actions import format_size, format_time
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.notebook.widgets._common import MessageLine, button, reported, resolve_workspace
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.workspace import Workspace


class RegistryPanel(widgets.VBox):
    """Models and versions of a workspace, with tags, description, files and lineage.

    Pick a model and a version to see its details; below, register a new version from a path, download
    the selected version, delete it (after a confirmation), or deploy it as a local service.

    Args:
        workspace: A ``Workspace``, a folder, or None for ``Workspace.from_config()``.

    Attributes:
        model_select (Dropdown): Model names.
        version_select (Dropdown): Versions of the selected model, newest first.
        details (HTML): The selected version: tags, description, files, sample input, lineage.
        message (MessageLine): What the last action did, or its error.
    """

    def __init__(self, workspace: Workspace | str | Path | None = None) -> None:
        self.workspace = resolve_workspace(workspace)
        self._deploy_callbacks: list[Callable[[Any], None]] = []
        self.model_select = widgets.Dropdown(description="Model", options=[])
        self.version_select = widgets.Dropdown(description="Version", options=[])
        self.refresh_button = button("Refresh", lambda _: self.refresh(), icon="refresh")
        self.details = widgets.HTML()
        self.message = MessageLine()

        self.register_path = widgets.Text(description="Path", placeholder="outputs/model.pkl or a folder")
        self.register_name = widgets.Text(description="Name", placeholder="model name")
        self.register_tags = widgets.Text(description="Tags", placeholder="stage=dev, team=vision")
        self.register_description = widgets.Text(description="Description")
        self.register_button = button("Register", self._on_register, style="primary", icon="upload")

        self.download_dir = widgets.Text(description="To folder", value="downloads")
        self.download_button = button("Download", self._on_download, icon="download")

        self.delete_button = button("Delete version…", self._on_delete, style="danger", icon="trash")
        self.confirm_label = widgets.HTML()
        self.confirm_button = button("Yes, delete", self._on_confirm_delete, style="danger")
        self.cancel_button = button("Cancel", self._on_cancel_delete)
        self.confirm_box = widgets.HBox([self.confirm_label, self.confirm_button, self.cancel_button],
                                        layout=widgets.Layout(display="none"))

        self.deploy_service = widgets.Text(description="Service", placeholder="service name")
        self.deploy_entry = widgets.Text(description="Entry", value="score.py",
                                         placeholder="empty: no-code (model registered with a framework)")
        self.deploy_source_dir = widgets.Text(description="Source dir", placeholder="(optional)")
        self.deploy_button = button("Deploy this version", self._on_deploy, style="success", icon="rocket")
        self.profile_button = button("Profile", self._on_profile, icon="tachometer",
                                     tooltip="v1's Model.profile: a temporary service under load, sent the "
                                             "version's sample_input; recommends CPU and memory")

        self.model_select.observe(self._on_model, names="value")
        self.version_select.observe(self._on_version, names="value")
        super().__init__(children=[
            widgets.HBox([self.model_select, self.version_select, self.refresh_button]),
            self.details,
            widgets.HBox([self.download_dir, self.download_button, self.delete_button]),
            self.confirm_box,
            widgets.HTML("<b>Deploy the selected version</b> (this kernel's interpreter; updates a service of "
                         "that name)"),
            # Three 300 px fields and the button are wider than a notebook at common widths: wrap, so the
            # button stays inside the tab instead of scrolling the row sideways.
            widgets.HBox([self.deploy_service, self.deploy_entry, self.deploy_source_dir, self.deploy_button,
                          self.profile_button], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HTML("<b>Register a new version</b>"),
            # Wrapped as the deploy row: two fields and the button overflow a 1000 px window otherwise.
            widgets.HBox([self.register_path, self.register_name], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.register_tags, self.register_description, self.register_button],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.message,
        ])
        self.refresh()

    # -- reading --------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload model names (keeping the selection when it still exists)."""
        with reported(self.message):
            names = sorted({m.name for m in actions.list_models(self.workspace)})
            current = self.model_select.value
            self.model_select.options = names
            if current in names:
                self.model_select.value = current
                self._on_model({"new": current})
            elif names:
                self.model_select.value = names[0]
            else:
                self.version_select.options = []
                self.details.value = "<i>No registered models yet: register one below, or with %register_model.</i>"

    @property
    def selected(self) -> Any:
        """The selected ``Model`` version, or None."""
        if not self.model_select.value or not self.version_select.value:
            return None
        return actions.get_model(self.workspace, self.model_select.value, int(self.version_select.value))

    def _on_model(self, change: dict[str, Any]) -> None:
        name = change.get("new")
        if not name:
            return
        with reported(self.message):
            versions = [m.version for m in actions.list_models(self.workspace, name)]
            current = self.version_select.value
            self.version_select.options = [(str(v), v) for v in versions]
            if current in versions:
                self.version_select.value = current
                self._show_details()
            elif versions:
                self.version_select.value = versions[0]

    def _on_version(self, change: dict[str, Any]) -> None:
        if change.get("new") is not None:
            with reported(self.message):
                self._show_details()

    def _show_details(self) -> None:
        model = self.selected
        if model is None:
            self.details.value = ""
            return
        data = model.serialize()
        files = "".join(
            f"<li><code>{html.escape(f['path'])}</code> {format_size(int(f['size']))}</li>" for f in data["files"]
        )
        tags = ", ".join(f"{html.escape(k)}={html.escape(v)}" for k, v in model.tags.items()) or "-"
        lineage = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
            for k, v in (model.lineage or {}).items()
        )
        sample = json.dumps(model.sample_input) if model.sample_input is not None else "-"
        self.details.value = (
            f"<div class='mldeploy-model'><b>{html.escape(model.id)}</b> registered "
            f"{format_time(model.created_time)}<br>"
            f"<b>Tags</b>: {tags}<br><b>Description</b>: {html.escape(model.description or '-')}<br>"
            f"<b>Framework</b>: {html.escape(model.model_framework or '-')}<br>"
            f"<b>Files</b> ({len(data['files'])}):<ul style='margin:0'>{files}</ul>"
            f"<b>Sample input</b>: <code>{html.escape(sample[:500])}</code>"
            f"<details><summary>Lineage</summary><table>{lineage}</table></details></div>"
        )
        if not self.deploy_service.value:
            self.deploy_service.value = f"{model.name}-svc"

    # -- actions --------------------------------------------------------------------------------------

    def _chosen_model(self) -> Any:
        """Clear the message line and return the selected version; None after asking the user to select one."""
        self.message.clear()
        model = self.selected
        if model is None:
            self.message.error("Select a model version first.")
        return model

    def _on_register(self, _button: Any = None) -> None:
        self.message.clear()
        with reported(self.message):
            path, name = self.register_path.value.strip(), self.register_name.value.strip()
            if not path or not name:
                self.message.error("Give the path of the model file or folder and a model name.")
                return
            model = actions.register_model(self.workspace, path, name, tags=self.register_tags.value,
                                           description=self.register_description.value.strip() or None)
            self.refresh()
            self.model_select.value = model.name
            self.version_select.value = model.version
            self.message.ok(f"Registered {model.id}.")

    def _on_download(self, _button: Any = None) -> None:
        model = self._chosen_model()
        if model is None:
            return
        with reported(self.message):
            written = model.download(self.download_dir.value.strip() or ".", exist_ok=True)
            self.message.ok(f"Downloaded {model.id} to {written}.")

    def _on_delete(self, _button: Any = None) -> None:
        model = self._chosen_model()
        if model is None:
            return
        self.confirm_label.value = f"Delete <b>{html.escape(model.id)}</b> and its files?"
        self.confirm_box.layout.display = "flex"

    def _on_cancel_delete(self, _button: Any = None) -> None:
        self.confirm_box.layout.display = "none"

    def _on_confirm_delete(self, _button: Any = None) -> None:
        self.confirm_box.layout.display = "none"
        model = self.selected
        if model is None:
            return
        with reported(self.message):
            model.delete()
            self.refresh()
            self.message.ok(f"Deleted {model.id}.")

    def _inference_config(self) -> InferenceConfig | None:
        """The deploy row's entry script and source folder (None: no-code, for a model with a framework)."""
        source_dir = self.deploy_source_dir.value.strip() or None
        entry = self.deploy_entry.value.strip()
        return InferenceConfig(entry or "score.py", source_directory=source_dir) if entry or source_dir else None

    def _on_profile(self, _button: Any = None) -> None:
        model = self._chosen_model()
        if model is None:
            return
        with reported(self.message):
            if model.sample_input is None:
                raise InvalidArgument(
                    f"{model.id} has no sample_input to send: register it with one, or run "
                    "%profile_model / Model.profile with an input_dataset."
                )
            self.message.info(f"Profiling {model.id} (a temporary service under load, about 15 s)…")
            body = json.dumps(model.sample_input)
            profile = Model.profile(self.workspace, f"{model.name}-{model.version}-panel", [model.id],
                                    self._inference_config(), [body] * 20)
            profile.wait_for_completion()
            details = profile.get_details()
            if details.get("error"):
                raise DeploymentError(f"Profile of {model.id} failed: {details['error']}")
            self.message.ok(f"{model.id}: {details.get('recommendation', '')}".strip())

    def on_deploy(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(service)`` after "Deploy this version" deployed a service."""
        self._deploy_callbacks.append(callback)

    def _on_deploy(self, _button: Any = None) -> None:
        model = self._chosen_model()
        if model is None:
            return
        with reported(self.message):
            name = self.deploy_service.value.strip()
            # An empty Entry field deploys a model registered with a supported framework with no code.
            config = self._inference_config()
            exists = name in actions.service_names(self.workspace)
            self.message.info(f"{'Updating' if exists else 'Deploying'} {name} with {model.id}…")
            service = actions.deploy_service(self.workspace, name, [model.id], config, overwrite=True)
            service.wait_for_deployment()
            self.message.ok(f"{name} serves {model.id} at {service.scoring_uri}")
            for callback in self._deploy_callbacks:
                callback(service)
