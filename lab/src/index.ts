import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Signal } from '@lumino/signaling';

import { KernelLinks } from './kernel';
import { requestAPI } from './request';
import { CodestralProvider, ICompletionReply } from './provider';
import { showSpendDetail, spendText } from './spend';
import { completionText, StatusText } from './status';
import { CompletionSwitch } from './switch';

const TOGGLE = 'mistral-magic:toggle-completion';

/**
 * Codestral completion as you type (opt-in, through the server extension), with its
 * switch as a command and a status-bar item.
 */
const completion: JupyterFrontEndPlugin<void> = {
  id: 'mistral-magic-lab:completion',
  description: 'Codestral fill-in-the-middle as ghost text while typing in a notebook.',
  autoStart: true,
  requires: [ISettingRegistry],
  optional: [ICompletionProviderManager, IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    registry: ISettingRegistry,
    manager: ICompletionProviderManager | null,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ): void => {
    // registerInlineProvider arrived in JupyterLab 4.1: feature-detect it.
    if (manager === null || typeof manager.registerInlineProvider !== 'function') {
      return;
    }
    const provider = new CodestralProvider();
    manager.registerInlineProvider(provider);
    const toggle = new CompletionSwitch(registry);
    let last: ICompletionReply | null = null;
    app.commands.addCommand(TOGGLE, {
      label: 'Codestral Completion as You Type',
      caption: 'Ghost text from Codestral while typing in a notebook (paid requests)',
      isToggled: () => toggle.enabled,
      execute: () => toggle.toggle()
    });
    palette?.addItem({ command: TOGGLE, category: 'Mistral' });
    const item = new StatusText('jp-MistralMagic-completion', () => {
      void app.commands.execute(TOGGLE);
    });
    const render = (): void => {
      const { text, title, warn } = completionText(toggle.enabled, last);
      item.setText(text, title, warn);
    };
    provider.replied.connect((_, reply) => {
      if (reply.status !== 'superseded') {
        last = reply;
        render();
      }
    });
    // Today's spend and the cap as soon as the switch is on, before any completion.
    const fetchStatus = async (): Promise<void> => {
      if (toggle.enabled) {
        const status = await requestAPI<Partial<ICompletionReply>>('status');
        last = { completion: '', status: 'ok', ...status };
        render();
      }
    };
    toggle.changed.connect(() => {
      last = null;
      render();
      app.commands.notifyCommandChanged(TOGGLE);
      fetchStatus().catch(console.warn);
    });
    render();
    statusBar?.registerStatusItem('mistral-magic-lab:completion', {
      item,
      align: 'left',
      rank: 20
    });
    // The provider's settings exist once the inline completer has read the providers.
    app.restored.then(() => toggle.load()).catch(console.error);
  }
};

/**
 * The kernel's spend in the status bar, and generated cells replaced instead of
 * added again on every run.
 */
const kernel: JupyterFrontEndPlugin<void> = {
  id: 'mistral-magic-lab:kernel',
  description: "The current notebook kernel's Mistral spend; generated cells in place.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    statusBar: IStatusBar | null
  ): void => {
    const links = new KernelLinks();
    tracker.forEach(panel => links.watch(panel));
    tracker.widgetAdded.connect((_, panel) => links.watch(panel));
    links.placed.connect((_, done) => {
      if (done === 'kept-edits') {
        Notification.info(
          'The generated cell below was edited, so it was kept: the new code is in a new cell above it.',
          { autoClose: 8000 }
        );
      }
    });
    if (statusBar === null) {
      return;
    }
    const current = () => links.spend(tracker.currentWidget?.sessionContext.session?.kernel);
    const item = new StatusText('jp-MistralMagic-spend', () => {
      const spend = current();
      if (spend !== null) {
        void showSpendDetail(spend);
      }
    });
    const render = (): void => {
      const spend = current();
      if (spend !== null) {
        const { text, title } = spendText(spend);
        item.setText(text, title);
      }
      changed.emit(void 0);
    };
    const changed = new Signal<unknown, void>({});
    links.spendChanged.connect(render);
    tracker.currentChanged.connect(render);
    statusBar.registerStatusItem('mistral-magic-lab:spend', {
      item,
      align: 'left',
      rank: 21,
      isActive: () => current() !== null,
      activeStateChanged: changed
    });
  }
};

export default [completion, kernel];
