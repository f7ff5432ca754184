/**
 * A main-area tab showing a service's log and following its tail (as `tail -f`).
 */
import { Widget } from '@lumino/widgets';

import { APIError, requestAPI, seg } from './api';

/** How often the tab re-reads the log (ms), and how many lines it keeps. */
const LOG_POLL_MS = 2000;
const LOG_LINES = 1000;

/** The log view of one service. */
export class ServiceLogs extends Widget {
  constructor(readonly serviceName: string) {
    super();
    this.addClass('jp-MLDeploy-logs');
    this._status = document.createElement('div');
    this._status.className = 'jp-MLDeploy-logsStatus';
    this._pre = document.createElement('pre');
    this._pre.className = 'jp-MLDeploy-logsText';
    this.node.appendChild(this._status);
    this.node.appendChild(this._pre);
  }

  /** Read the last lines again; keeps the view at the bottom when it was there. */
  async update_(): Promise<void> {
    try {
      const data = await requestAPI<{ logs: string }>(
        `services/${seg(this.serviceName)}/logs?tail=${LOG_LINES}`
      );
      const atBottom =
        this.node.scrollTop + this.node.clientHeight >=
        this.node.scrollHeight - 4;
      if (this._pre.textContent !== data.logs) {
        this._pre.textContent = data.logs;
        if (atBottom) {
          this.node.scrollTop = this.node.scrollHeight;
        }
      }
      this._status.textContent = `Last ${LOG_LINES} lines, refreshed every ${LOG_POLL_MS / 1000} s`;
      this._status.classList.remove('jp-mod-error');
    } catch (error) {
      this._status.textContent =
        error instanceof Error ? error.message : String(error);
      this._status.classList.add('jp-mod-error');
      if (error instanceof APIError && error.status === 404) {
        // The service was deleted: nothing more will come.
        window.clearInterval(this._timer);
      }
    }
  }

  protected onAfterAttach(): void {
    void this.update_();
    this._timer = window.setInterval(() => void this.update_(), LOG_POLL_MS);
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this._timer);
  }

  private _pre: HTMLPreElement;
  private _status: HTMLDivElement;
  private _timer = 0;
}
