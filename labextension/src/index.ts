/**
 * JupyterLab plugin of jupyter_mldeploy: the "ML Deploy" left sidebar, a log tab per service, and the
 * palette commands "ML Deploy: Refresh" and "ML Deploy: Open logs".
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';

import { ServiceLogs } from './logs';
import { MLDeploySidebar, mldeployIcon } from './sidebar';

namespace CommandIDs {
  export const refresh = 'mldeploy:refresh';
  export const openLogs = 'mldeploy:open-logs';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mldeploy:plugin',
  description:
    'ML Deploy sidebar: models, services, logs and a request tester.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const logs = new WidgetTracker<MainAreaWidget<ServiceLogs>>({
      namespace: 'mldeploy-logs'
    });

    const openLogs = (name: string): void => {
      const existing = logs.find(w => w.content.serviceName === name);
      if (existing) {
        app.shell.activateById(existing.id);
        return;
      }
      const widget = new MainAreaWidget({ content: new ServiceLogs(name) });
      widget.id = `mldeploy-logs-${name}`;
      widget.title.label = `Logs: ${name}`;
      widget.title.icon = mldeployIcon;
      widget.title.closable = true;
      void logs.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };

    const sidebar = new MLDeploySidebar({ openLogs });
    app.shell.add(sidebar, 'left', { rank: 950 });
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }

    app.commands.addCommand(CommandIDs.refresh, {
      label: 'ML Deploy: Refresh',
      caption: 'Re-read models and services from the workspace',
      execute: () => sidebar.refresh()
    });
    app.commands.addCommand(CommandIDs.openLogs, {
      label: 'ML Deploy: Open logs',
      caption: "Open a tab following a service's log",
      execute: async args => {
        let name = args['name'] as string | undefined;
        if (!name) {
          await sidebar.refresh();
          const names = sidebar.services.map(s => s.name);
          if (names.length === 0) {
            sidebar.showError(
              'No services deployed: there are no logs to open.'
            );
            return;
          }
          const choice = await InputDialog.getItem({
            title: 'Open the logs of',
            items: names
          });
          if (!choice.button.accept || !choice.value) {
            return;
          }
          name = choice.value;
        }
        openLogs(name);
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.refresh, category: 'ML Deploy' });
      palette.addItem({ command: CommandIDs.openLogs, category: 'ML Deploy' });
    }
  }
};

export default plugin;
