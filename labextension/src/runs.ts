/**
 * The sidebar's "Runs" section: experiment runs with their status, parameters, last metrics and the models
 * registered from them; a click on a run shows it whole (every metric, files, models, folder).
 *
 * Reads `GET runs` and `GET runs/<id>` (jupyter_mldeploy/jupyter_server/runs_handlers.py), which only read,
 * so polling while runs log is safe. The list is rebuilt only when an answer changed, so a poll never
 * swallows a click.
 */
import { APIError, IRunDetails, IRunListing, requestAPI, seg } from './api';
import { el } from './dom';
import { compactJSON } from './request';

/** Runs listed at most (the newest); the experiment filter reaches older ones. */
export const RUNS_LIMIT = 50;

/** A parameter or metric value as text: strings as they are, anything else compact JSON. */
function valueText(value: unknown): string {
  return typeof value === 'string' ? value : compactJSON(value);
}

/** `name=value, name=value`. */
function pairs(values: { [name: string]: unknown }): string {
  return Object.entries(values)
    .map(([name, value]) => `${name}=${valueText(value)}`)
    .join(', ');
}

/** An ISO 8601 time as listings show it: local time to the second (`2026-11-27 18:04:05`). */
function localTime(iso: string): string {
  const t = new Date(iso);
  const two = (n: number): string => String(n).padStart(2, '0');
  return (
    `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())} ` +
    `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`
  );
}

/** A run status badge: the service badge's pill, colored by status in style/base.css. */
function statusBadge(status: string): HTMLElement {
  const badge = el('span', 'jp-MLDeploy-state', status);
  badge.dataset.state = status;
  return badge;
}

/** The runs section of the sidebar. */
export class RunsSection {
  /**
   * @param body - The section's body element, filled by this object.
   * @param report - Shows an error of a refresh this section starts itself (a click, the filter).
   */
  constructor(body: HTMLElement, report: (error: unknown) => void) {
    this._report = report;
    this._select = el('select', 'jp-MLDeploy-experimentSelect');
    this._select.title = 'Show the runs of one experiment';
    this._select.addEventListener('change', () => {
      this._experiment = this._select.value;
      void this.refresh().catch(this._report);
    });
    this._list = el('ul', 'jp-MLDeploy-list jp-MLDeploy-runList');
    body.appendChild(this._select);
    body.appendChild(this._list);
    this._setExperiments([]);
  }

  /** The run whose details are shown, or null. */
  get openRun(): string | null {
    return this._open;
  }

  /**
   * Re-read the runs (of the chosen experiment) and the open run's details, and show them.
   *
   * @throws APIError when the server answers an error other than a vanished experiment or run.
   */
  async refresh(): Promise<void> {
    let listing: IRunListing;
    try {
      listing = await requestAPI<IRunListing>(this._query());
    } catch (error) {
      if (!(error instanceof APIError) || error.status !== 404 || !this._experiment) {
        throw error;
      }
      // The chosen experiment is gone (workspace replaced): show every run again.
      this._experiment = '';
      listing = await requestAPI<IRunListing>(this._query());
    }
    let details: IRunDetails | null = null;
    if (this._open !== null) {
      try {
        details = await requestAPI<IRunDetails>(`runs/${seg(this._open)}`);
      } catch (error) {
        if (!(error instanceof APIError) || error.status !== 404) {
          throw error;
        }
        this._open = null;
      }
    }
    const shown = JSON.stringify([this._experiment, listing, details]);
    if (shown === this._shown) {
      return;
    }
    this._shown = shown;
    this._setExperiments(listing.experiments);
    this._render(listing, details);
  }

  private _query(): string {
    const query = new URLSearchParams({ limit: String(RUNS_LIMIT) });
    if (this._experiment) {
      query.set('experiment', this._experiment);
    }
    return `runs?${query.toString()}`;
  }

  private _setExperiments(names: string[]): void {
    const values = ['', ...names];
    const current = Array.from(this._select.options).map(o => o.value);
    // No experiment, nothing to filter: the select shows once the first run is recorded.
    this._select.hidden = names.length === 0;
    if (JSON.stringify(values) !== JSON.stringify(current)) {
      this._select.replaceChildren(
        ...values.map(name => {
          const option = el('option', '', name || 'All experiments');
          option.value = name;
          return option;
        })
      );
    }
    this._select.value = names.includes(this._experiment)
      ? this._experiment
      : '';
  }

  private _render(listing: IRunListing, details: IRunDetails | null): void {
    const items: HTMLElement[] = [];
    if (listing.runs.length === 0) {
      items.push(
        el(
          'li',
          'jp-MLDeploy-empty',
          'No runs yet: Experiment(ws, name).start_logging() or mldeploy pipeline run records one.'
        )
      );
    }
    for (const run of listing.runs) {
      const item = el('li', 'jp-MLDeploy-run');
      item.dataset.id = run.id;
      const header = el('div', 'jp-MLDeploy-runHeader');
      header.setAttribute('role', 'button');
      header.tabIndex = 0;
      header.title = `${run.id}: click for its metrics, files and models`;
      header.appendChild(
        el('span', 'jp-MLDeploy-name', `${run.experiment} #${run.number}`)
      );
      header.appendChild(statusBadge(run.status));
      header.appendChild(el('span', 'jp-MLDeploy-runKind', run.kind));
      const toggle = (): void => {
        this._open = this._open === run.id ? null : run.id;
        void this.refresh().catch(this._report);
      };
      header.addEventListener('click', toggle);
      header.addEventListener('keydown', event => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          toggle();
        }
      });
      item.appendChild(header);
      const lines: [string, string][] = [
        ['jp-MLDeploy-runParams', pairs(run.parameters)],
        ['jp-MLDeploy-runMetrics', pairs(run.metrics)],
        [
          'jp-MLDeploy-runModels',
          run.models.length > 0 ? `models ${run.models.join(', ')}` : ''
        ],
        ['jp-MLDeploy-runError', run.error ?? '']
      ];
      for (const [className, text] of lines) {
        if (text) {
          item.appendChild(el('div', className, text));
        }
      }
      if (details !== null && details.id === run.id) {
        item.classList.add('jp-mod-open');
        item.appendChild(this._details(details));
      }
      items.push(item);
    }
    this._list.replaceChildren(...items);
  }

  private _details(run: IRunDetails): HTMLElement {
    const box = el('div', 'jp-MLDeploy-runDetails');
    box.appendChild(el('code', 'jp-MLDeploy-runId', run.id));
    const took =
      run.durationSeconds !== null
        ? `, took ${run.durationSeconds.toFixed(1)} s`
        : '';
    box.appendChild(
      el('div', '', `started ${localTime(run.startTime)}${took}`)
    );
    const sections: [string, string, string[]][] = [
      [
        'Parameters',
        'params',
        Object.entries(run.parameters).map(([k, v]) => `${k} = ${valueText(v)}`)
      ],
      [
        'Metrics',
        'metrics',
        Object.entries(run.metrics).map(([k, v]) => `${k} = ${valueText(v)}`)
      ],
      ['Files', 'files', run.files],
      ['Models', 'models', run.models.map(m => m.id)]
    ];
    for (const [title, key, rows] of sections) {
      box.appendChild(el('div', 'jp-MLDeploy-runDetailsTitle', title));
      const list = el('ul', `jp-MLDeploy-runDetailsList jp-MLDeploy-run-${key}`);
      if (rows.length === 0) {
        list.appendChild(el('li', 'jp-MLDeploy-empty', 'none'));
      }
      for (const row of rows) {
        list.appendChild(el('li', '', row));
      }
      box.appendChild(list);
    }
    const folder = el('div', 'jp-MLDeploy-runFolder', `Folder: ${run.folder}`);
    folder.title = run.folder;
    box.appendChild(folder);
    return box;
  }

  private _report: (error: unknown) => void;
  private _select: HTMLSelectElement;
  private _list: HTMLElement;
  private _experiment = '';
  private _open: string | null = null;
  private _shown = '';
}
