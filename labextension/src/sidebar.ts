/**
 * The "ML Deploy" left panel: models (with a no-code Deploy action), services (live state, deployments under
 * way), a request tester speaking each protocol, and experiment runs.
 *
 * Plain DOM inside a Lumino widget: every list is rebuilt from the REST answers, and every action calls
 * one route and then refreshes. All logic (states, validation, deletion rules, payload shapes) lives in
 * Python.
 */
import {
  Clipboard,
  Dialog,
  InputDialog,
  showDialog
} from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  APIError,
  IDeployJob,
  IModelGroup,
  IModelVersion,
  IScoreResult,
  IService,
  PROTOCOLS,
  requestAPI,
  seg
} from './api';
import { button, el } from './dom';
import { requestText } from './request';
import { RunsSection } from './runs';

/** How often the panel re-reads the services' states while it is visible (ms). */
const POLL_INTERVAL_MS = 3000;

/** What the tester says while there is no service to send to. */
const NO_SERVICE_NOTICE = 'Deploy a service first: there is nothing to send to.';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2 3 7v10l9 5 9-5V7l-9-5zm0 2.3L18.7 8 12 11.7 5.3 8 12 4.3zM5 9.7l6 3.3v6.6l-6-3.3V9.7zm8 9.9V13l6-3.3v6.6l-6 3.3z"/>
  </g>
</svg>`;

/** The sidebar's icon (a box: a packaged model). */
export const mldeployIcon = new LabIcon({
  name: 'jupyter-mldeploy:icon',
  svgstr: ICON_SVG
});

/** Options of the sidebar. */
export interface ISidebarOptions {
  /** Open a main-area tab following a service's log. */
  openLogs: (name: string) => void;
}

/** The ML Deploy sidebar widget. */
export class MLDeploySidebar extends Widget {
  constructor(options: ISidebarOptions) {
    super();
    this._openLogs = options.openLogs;
    this.id = 'jp-mldeploy-sidebar';
    this.addClass('jp-MLDeploy');
    this.title.icon = mldeployIcon;
    this.title.caption = 'ML Deploy';

    const header = el('div', 'jp-MLDeploy-header');
    header.appendChild(el('h2', 'jp-MLDeploy-title', 'ML Deploy'));
    header.appendChild(
      button('Refresh', 'Refresh models and services', () => {
        void this.refresh();
      })
    );
    this.node.appendChild(header);
    this._workspaceNode = el('div', 'jp-MLDeploy-workspace');
    this.node.appendChild(this._workspaceNode);

    this._errorNode = el('div', 'jp-MLDeploy-error');
    this._errorNode.setAttribute('role', 'alert');
    this._errorNode.hidden = true;
    this.node.appendChild(this._errorNode);

    this._modelsNode = this._section('Models', 'models');
    this._servicesNode = this._section('Services', 'services');
    this._buildTester(this._section('Test request', 'tester'));
    this._runs = new RunsSection(this._section('Runs', 'runs'), error =>
      this._report(error)
    );
  }

  /** Show `message` in the red notice at the top until dismissed or replaced. */
  showError(message: string): void {
    this._errorNode.replaceChildren();
    this._errorNode.appendChild(el('span', 'jp-MLDeploy-errorText', message));
    this._errorNode.appendChild(
      button('×', 'Dismiss', () => this.clearError(), 'jp-MLDeploy-dismiss')
    );
    this._errorNode.hidden = false;
  }

  /** Hide the error notice. */
  clearError(): void {
    this._errorNode.hidden = true;
    this._errorNode.replaceChildren();
  }

  /** The services listed at the last refresh. */
  get services(): IService[] {
    return this._services;
  }

  /** Re-read workspace, models, services, deployments under way and runs from the server. */
  async refresh(): Promise<void> {
    try {
      const [workspace, models, services, deploys] = await Promise.all([
        requestAPI<{ path: string }>('workspace'),
        requestAPI<{ models: IModelGroup[] }>('models'),
        requestAPI<{ services: IService[] }>('services'),
        requestAPI<{ deploys: IDeployJob[] }>('deploys'),
        this._runs.refresh()
      ]);
      this._workspaceNode.textContent = `Workspace: ${workspace.path}`;
      this._models = models.models;
      this._services = services.services;
      this._deploys = deploys.deploys;
      this._renderModels();
      this._renderServices();
      this._renderServiceChoices();
      if (this._pollFailed) {
        this._pollFailed = false;
        this.clearError();
      }
      this._reportFailedDeploys();
    } catch (error) {
      this._pollFailed = true;
      this._report(error);
    }
  }

  protected onAfterAttach(): void {
    void this.refresh();
    this._timer = window.setInterval(() => {
      if (this.isVisible && !this._busy) {
        void this.refresh();
      }
    }, POLL_INTERVAL_MS);
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this._timer);
  }

  protected onAfterShow(): void {
    this._fitRequest();
    void this.refresh();
  }

  protected onResize(): void {
    // A new width re-wraps the request's lines.
    this._fitRequest();
  }

  private _section(title: string, key: string): HTMLElement {
    const section = el('section', `jp-MLDeploy-section jp-MLDeploy-${key}`);
    section.appendChild(el('h3', 'jp-MLDeploy-sectionTitle', title));
    const body = el('div', 'jp-MLDeploy-sectionBody');
    section.appendChild(body);
    this.node.appendChild(section);
    return body;
  }

  private _report(error: unknown): void {
    this.showError(
      error instanceof Error ? error.message : `Unexpected error: ${error}`
    );
  }

  /** Run one action, show its error if any, then refresh. */
  private async _act(action: () => Promise<unknown>): Promise<void> {
    this._busy = true;
    try {
      await action();
    } catch (error) {
      this._report(error);
    } finally {
      this._busy = false;
    }
    await this.refresh();
  }

  private _renderModels(): void {
    const list = el('ul', 'jp-MLDeploy-list');
    if (this._models.length === 0) {
      list.appendChild(
        el('li', 'jp-MLDeploy-empty', 'No registered models yet.')
      );
    }
    for (const group of this._models) {
      const item = el('li', 'jp-MLDeploy-model');
      item.dataset.name = group.name;
      item.appendChild(el('div', 'jp-MLDeploy-name', group.name));
      const versions = el('ul', 'jp-MLDeploy-versions');
      for (const version of group.versions) {
        const row = el('li', 'jp-MLDeploy-version');
        row.dataset.id = version.id;
        row.appendChild(
          el('span', 'jp-MLDeploy-versionLabel', `v${version.version}`)
        );
        const tags = Object.entries(version.tags)
          .map(([key, value]) => `${key}=${value}`)
          .join(', ');
        row.appendChild(el('span', 'jp-MLDeploy-tags', tags));
        if (version.modelFramework) {
          row.appendChild(
            el('span', 'jp-MLDeploy-framework', version.modelFramework)
          );
        }
        row.appendChild(
          button(
            'Deploy',
            version.modelFramework
              ? `Deploy ${version.id} as a service with no code (a built-in ${version.modelFramework} entry script)`
              : `Deploy ${version.id} with no code: only a model registered with model_framework (scikit-learn, ONNX, MLflow) can be`,
            () => {
              void this._deployModel(version);
            },
            'jp-MLDeploy-deployButton'
          )
        );
        row.appendChild(
          button(
            'Delete',
            `Delete ${version.id}`,
            () => {
              void this._deleteModel(version.name, version.version);
            },
            'jp-MLDeploy-danger'
          )
        );
        versions.appendChild(row);
      }
      item.appendChild(versions);
      list.appendChild(item);
    }
    this._modelsNode.replaceChildren(list);
  }

  private _renderServices(): void {
    const list = el('ul', 'jp-MLDeploy-list');
    const listed = new Set(this._services.map(s => s.name));
    // A deployment under way whose service exists already (an update, or init() running) is told in the
    // service's own row; the others get a row of their own.
    const jobs = this._deploys.filter(
      job => job.state === 'Failed' || !listed.has(job.service)
    );
    if (this._services.length === 0 && jobs.length === 0) {
      list.appendChild(el('li', 'jp-MLDeploy-empty', 'No services deployed.'));
    }
    for (const job of jobs) {
      list.appendChild(this._deployRow(job));
    }
    for (const service of this._services) {
      const item = el('li', 'jp-MLDeploy-service');
      item.dataset.name = service.name;
      const top = el('div', 'jp-MLDeploy-serviceHeader');
      top.appendChild(el('span', 'jp-MLDeploy-name', service.name));
      const badge = el('span', 'jp-MLDeploy-state', service.state);
      badge.dataset.state = service.state;
      if (service.error) {
        badge.title = service.error;
      }
      top.appendChild(badge);
      item.appendChild(top);
      const deploying = this._deploys.find(
        job => job.service === service.name && job.state === 'Deploying'
      );
      if (deploying) {
        item.appendChild(
          el(
            'div',
            'jp-MLDeploy-deployNote',
            `Deploying ${deploying.model}\u2026`
          )
        );
      }
      if (
        service.error &&
        (service.state === 'Failed' || service.state === 'Unhealthy')
      ) {
        // The first line (the reason); the tooltip and the Logs tab have the rest.
        const reason = el(
          'div',
          'jp-MLDeploy-serviceError',
          service.error.split('\n')[0]
        );
        reason.title = service.error;
        item.appendChild(reason);
      }
      if (service.models && service.models.length > 0) {
        item.appendChild(
          el('div', 'jp-MLDeploy-serviceModels', service.models.join(', '))
        );
      }
      if (service.scoringUri) {
        const uri = el('div', 'jp-MLDeploy-uri');
        const uriText = el('code', 'jp-MLDeploy-uriText', service.scoringUri);
        // One line, cut with an ellipsis when the sidebar is narrow: the tooltip and Copy give it whole.
        uriText.title = service.scoringUri;
        uri.appendChild(uriText);
        const scoringUri = service.scoringUri;
        uri.appendChild(
          button('Copy', 'Copy the scoring URI', () => {
            Clipboard.copyToSystem(scoringUri);
          })
        );
        item.appendChild(uri);
      }
      if (service.authEnabled) {
        // The key is never put in the page: it is fetched when Copy is clicked and goes to the clipboard only.
        const keyRow = el('div', 'jp-MLDeploy-uri jp-MLDeploy-keyRow');
        const masked = el('code', 'jp-MLDeploy-keyText', 'Key: \u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022');
        masked.title = 'Key auth is on: callers send Authorization: Bearer <key>';
        keyRow.appendChild(masked);
        const name = service.name;
        keyRow.appendChild(
          button('Copy key', 'Copy the primary key', () => {
            requestAPI<{ primaryKey: string }>(`services/${seg(name)}/keys`)
              .then(keys => Clipboard.copyToSystem(keys.primaryKey))
              .catch(error => this._report(error));
          })
        );
        item.appendChild(keyRow);
      }
      const actions = el('div', 'jp-MLDeploy-actions');
      actions.appendChild(
        button('Reload', 'Serve the current score.py without downtime', () => {
          badge.textContent = 'Transitioning';
          badge.dataset.state = 'Transitioning';
          void this._act(() =>
            requestAPI(`services/${seg(service.name)}/reload`, {
              method: 'POST'
            })
          );
        })
      );
      actions.appendChild(
        button('Logs', 'Open the log in a tab that follows it', () =>
          this._openLogs(service.name)
        )
      );
      actions.appendChild(
        button(
          'Delete',
          `Delete service ${service.name}`,
          () => {
            void this._deleteService(service.name);
          },
          'jp-MLDeploy-danger'
        )
      );
      item.appendChild(actions);
      list.appendChild(item);
    }
    this._servicesNode.replaceChildren(list);
  }

  /**
   * A row for a deployment the sidebar started whose service is not listed yet (environment build) or that
   * failed: the state, the model, what is deployed (the no-code note) or why it failed, and Dismiss.
   */
  private _deployRow(job: IDeployJob): HTMLElement {
    const item = el('li', 'jp-MLDeploy-deploy');
    item.dataset.service = job.service;
    const top = el('div', 'jp-MLDeploy-serviceHeader');
    top.appendChild(el('span', 'jp-MLDeploy-name', job.service));
    const badge = el('span', 'jp-MLDeploy-state', job.state);
    badge.dataset.state = job.state;
    top.appendChild(badge);
    item.appendChild(top);
    if (job.state === 'Failed') {
      item.appendChild(
        el('div', 'jp-MLDeploy-serviceModels', `${job.model} was not deployed`)
      );
      item.appendChild(el('div', 'jp-MLDeploy-deployError', job.error ?? ''));
      const actions = el('div', 'jp-MLDeploy-actions');
      actions.appendChild(
        button('Dismiss', 'Forget this failed deployment', () => {
          void this._act(() =>
            requestAPI(`deploys/${seg(job.service)}`, { method: 'DELETE' })
          );
        })
      );
      item.appendChild(actions);
    } else {
      const seconds = Math.max(
        0,
        Math.round((Date.now() - Date.parse(job.startedTime)) / 1000)
      );
      item.appendChild(
        el(
          'div',
          'jp-MLDeploy-serviceModels',
          `${job.model}, started ${seconds} s ago`
        )
      );
      for (const note of job.notes) {
        item.appendChild(el('div', 'jp-MLDeploy-deployNote', note));
      }
    }
    return item;
  }

  /** Say once, in the notice at the top, that a deployment failed; its row under Services has the reason. */
  private _reportFailedDeploys(): void {
    for (const job of this._deploys) {
      const key = `${job.service} ${job.finishedTime}`;
      if (job.state === 'Failed' && !this._failuresShown.has(key)) {
        this._failuresShown.add(key);
        this.showError(
          `Deploying ${job.model} as ${job.service} failed; the reason is under Services.`
        );
      }
    }
  }

  /**
   * Deploy a version with no code: ask for the service name (default: the model's name), offer to update a
   * service of that name, then start the deployment, which the server runs in the background
   * (`POST models/<name>/<version>/deploy`); the Services list shows it under way, then the service.
   */
  private async _deployModel(version: IModelVersion): Promise<void> {
    const answer = await InputDialog.getText({
      title: `Deploy ${version.id} with no code`,
      label: 'Service name',
      text: version.name,
      okLabel: 'Deploy'
    });
    if (!answer.button.accept) {
      return;
    }
    const service = (answer.value ?? '').trim() || version.name;
    await this._act(async () => {
      let overwrite = false;
      if (this._services.some(s => s.name === service)) {
        const update = await showDialog({
          title: 'Service exists',
          body: `Service ${service} exists. Update it to serve ${version.id}? It keeps answering until the new version is ready.`,
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Update' })]
        });
        if (!update.button.accept) {
          return;
        }
        overwrite = true;
      }
      await requestAPI(
        `models/${seg(version.name)}/${seg(version.version)}/deploy`,
        {
          method: 'POST',
          body: JSON.stringify({ service, overwrite }),
          headers: { 'Content-Type': 'application/json' }
        }
      );
    });
  }

  private async _deleteModel(name: string, version: number): Promise<void> {
    const answer = await showDialog({
      title: 'Delete model version',
      body: `Delete ${name}:${version} and its files from the workspace?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    const path = `models/${seg(name)}/${seg(version)}`;
    await this._act(async () => {
      try {
        await requestAPI(path, { method: 'DELETE' });
      } catch (error) {
        if (!(error instanceof APIError) || error.status !== 409) {
          throw error;
        }
        // A service serves this version: say so, and let the user delete it anyway.
        const force = await showDialog({
          title: 'Model version in use',
          body: `${error.message}\n\nDelete it anyway?`,
          buttons: [
            Dialog.cancelButton(),
            Dialog.warnButton({ label: 'Delete anyway' })
          ]
        });
        if (force.button.accept) {
          await requestAPI(`${path}?force=true`, { method: 'DELETE' });
        }
      }
    });
  }

  private async _deleteService(name: string): Promise<void> {
    const answer = await showDialog({
      title: 'Delete service',
      body: `Stop service ${name} and remove its deployment folder?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (answer.button.accept) {
      await this._act(() =>
        requestAPI(`services/${seg(name)}`, { method: 'DELETE' })
      );
    }
  }

  private _buildTester(body: HTMLElement): void {
    this._testerNotice = el('div', 'jp-MLDeploy-empty', NO_SERVICE_NOTICE);
    this._serviceSelect = el('select', 'jp-MLDeploy-serviceSelect');
    this._serviceSelect.addEventListener('change', () => {
      // A result belongs to the service it came from.
      this._resultNode.replaceChildren();
      void this._prefill();
    });
    this._protocolSelect = el('select', 'jp-MLDeploy-protocolSelect');
    this._protocolSelect.title =
      'The route the request goes to: /score, /v2/models/<model>/infer or /invocations';
    for (const protocol of PROTOCOLS) {
      const option = el('option', '', protocol.label);
      option.value = protocol.value;
      this._protocolSelect.appendChild(option);
    }
    this._protocolSelect.addEventListener('change', () => {
      // Another protocol takes another body: its example replaces the text, the old answer goes.
      this._resultNode.replaceChildren();
      void this._prefill();
    });
    this._requestText = el('textarea', 'jp-MLDeploy-requestBody');
    this._requestText.rows = 3;
    this._requestText.spellcheck = false;
    this._requestText.value = requestText({ data: [] });
    this._requestText.addEventListener('input', () => this._fitRequest());
    this._sendButton = button(
      'Send',
      'POST this body to the service',
      () => {
        void this._send();
      },
      'jp-MLDeploy-send'
    );
    this._resultNode = el('div', 'jp-MLDeploy-result');
    body.appendChild(this._testerNotice);
    body.appendChild(this._serviceSelect);
    body.appendChild(this._protocolSelect);
    body.appendChild(this._requestText);
    body.appendChild(this._sendButton);
    body.appendChild(this._resultNode);
    // Until the first refresh says whether there is a service: no notice, nothing to send.
    this._testerNotice.hidden = true;
    this._sendButton.disabled = true;
  }

  /** Grow the request editor with its text (CSS caps it at half the window, then it scrolls). */
  private _fitRequest(): void {
    const editor = this._requestText;
    if (editor.offsetParent === null) {
      return; // not laid out (sidebar hidden): measured again when shown
    }
    editor.style.height = 'auto';
    // scrollHeight excludes the border; box-sizing is border-box.
    const border = editor.offsetHeight - editor.clientHeight;
    editor.style.height = `${editor.scrollHeight + border}px`;
  }

  /**
   * Keep the service picker in step with the list, without losing the user's choice: the "deploy a
   * service first" notice shows exactly while the list is empty, and a result whose service is gone goes.
   */
  private _renderServiceChoices(): void {
    const current = this._serviceSelect.value;
    const names = this._services.map(s => s.name);
    const empty = names.length === 0;
    this._testerNotice.hidden = !empty;
    this._serviceSelect.disabled = empty;
    this._protocolSelect.disabled = empty;
    this._sendButton.disabled = empty;
    const shown = Array.from(this._serviceSelect.options).map(o => o.value);
    if (names.join('\n') === shown.join('\n')) {
      return;
    }
    this._serviceSelect.replaceChildren(
      ...names.map(name => {
        const option = el('option', '', name);
        option.value = name;
        return option;
      })
    );
    if (names.includes(current)) {
      this._serviceSelect.value = current;
    } else {
      this._resultNode.replaceChildren();
      void this._prefill();
    }
  }

  /**
   * Put the service's example body in the editor: the one the panel's Test tab shows (input schema example,
   * else the served model's sample), floats rounded and shaped for the chosen protocol by the server
   * (`GET services/<name>/example?protocol=...`).
   */
  private async _prefill(): Promise<void> {
    const name = this._serviceSelect.value;
    const protocol = this._protocolSelect.value;
    if (!name) {
      return;
    }
    try {
      const example = await requestAPI<{ body: unknown }>(
        `services/${seg(name)}/example?protocol=${seg(protocol)}`
      );
      // Another service or protocol may have been picked meanwhile: its own prefill wins.
      if (
        example.body !== null &&
        this._serviceSelect.value === name &&
        this._protocolSelect.value === protocol
      ) {
        this._requestText.value = requestText(example.body);
        this._fitRequest();
      }
    } catch (error) {
      this._report(error);
    }
  }

  private async _send(): Promise<void> {
    const name = this._serviceSelect.value;
    if (!name) {
      // Send is disabled while the list is empty; this covers a click racing a refresh.
      return;
    }
    const text = this._requestText.value;
    try {
      JSON.parse(text);
    } catch (error) {
      this.showError(`The request body is not valid JSON: ${error}`);
      return;
    }
    this._resultNode.replaceChildren(
      el('div', 'jp-MLDeploy-pending', 'Sending…')
    );
    try {
      const result = await requestAPI<IScoreResult>(
        `services/${seg(name)}/score?protocol=${seg(this._protocolSelect.value)}`,
        {
          method: 'POST',
          body: text,
          headers: { 'Content-Type': 'application/json' }
        }
      );
      this._showResult(result);
    } catch (error) {
      if (error instanceof APIError && error.status === 400) {
        this._showRefusal(error);
      } else {
        this._resultNode.replaceChildren();
        this._report(error);
      }
    }
  }

  /**
   * Show why the server refused to send the body (HTTP 400), where the answer would have been: each
   * input-schema problem on its own line when the server lists them, else its message as it is.
   */
  private _showRefusal(error: APIError): void {
    const problems = error.body.problems ?? [];
    const summary = el(
      'div',
      'jp-MLDeploy-status jp-mod-failed',
      problems.length > 0
        ? `Not sent: the body does not fit the service's input schema (HTTP ${error.status})`
        : `Not sent (HTTP ${error.status})`
    );
    summary.dataset.status = 'not-sent';
    let detail: HTMLElement;
    if (problems.length > 0) {
      detail = el('ul', 'jp-MLDeploy-problems');
      for (const problem of problems) {
        detail.appendChild(el('li', '', problem));
      }
    } else {
      detail = el(
        'div',
        'jp-MLDeploy-refusal',
        error.body.message ?? error.message
      );
    }
    this._resultNode.replaceChildren(summary, detail);
  }

  private _showResult(result: IScoreResult): void {
    const ok = result.status >= 200 && result.status < 300;
    const summary = el(
      'div',
      `jp-MLDeploy-status ${ok ? 'jp-mod-ok' : 'jp-mod-failed'}`,
      `HTTP ${result.status} · ${result.latency_ms.toFixed(1)} ms`
    );
    summary.dataset.status = String(result.status);
    let shown = result.body;
    try {
      shown = JSON.stringify(JSON.parse(result.body), null, 2);
    } catch {
      // Not JSON: show the text as the service sent it.
    }
    const uri = el('div', 'jp-MLDeploy-resultUri', `POST ${result.uri}`);
    uri.title = result.uri;
    this._resultNode.replaceChildren(
      summary,
      uri,
      el('pre', 'jp-MLDeploy-responseBody', shown)
    );
  }

  private _openLogs: (name: string) => void;
  private _workspaceNode: HTMLElement;
  private _errorNode: HTMLElement;
  private _modelsNode: HTMLElement;
  private _servicesNode: HTMLElement;
  private _runs: RunsSection;
  private _testerNotice!: HTMLElement;
  private _serviceSelect!: HTMLSelectElement;
  private _protocolSelect!: HTMLSelectElement;
  private _sendButton!: HTMLButtonElement;
  private _requestText!: HTMLTextAreaElement;
  private _resultNode!: HTMLElement;
  private _models: IModelGroup[] = [];
  private _services: IService[] = [];
  private _deploys: IDeployJob[] = [];
  /** Failed deployments already told in the notice (`service finishedTime`). */
  private _failuresShown = new Set<string>();
  private _timer = 0;
  private _busy = false;
  private _pollFailed = false;
}
