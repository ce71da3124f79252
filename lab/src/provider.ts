import {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionList,
  IInlineCompletionProvider,
  InlineCompletionTriggerKind
} from '@jupyterlab/completer';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ReadonlyPartialJSONValue } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { requestAPI } from './request';

/** The provider's id in the inline completer's settings (`providers.<id>`). */
export const PROVIDER_ID = 'mistral-magic:codestral';

/** Requests wait at least this long after the last key, whatever the settings say. */
export const MIN_DEBOUNCE_MS = 300;

/** The code of the cells above sent at most (the server bounds it by tokens). */
const MAX_ABOVE_CHARS = 32000;

/** What the server extension answers to a completion request. */
export interface ICompletionReply {
  completion: string;
  status: 'ok' | 'refused' | 'error' | 'superseded';
  reason?: string;
  model?: string;
  backend?: string;
  cost?: number | null;
  spent_today?: number;
  cap_usd?: number;
}

/**
 * Codestral's fill-in-the-middle as ghost text: the text before and after the cursor,
 * and the code of the cells above (nearest first), go to the server extension, which
 * holds the key and the daily cap. A request still running when the next one starts
 * is aborted (the server cancels its call too), so no stale answer is ever shown.
 */
export class CodestralProvider implements IInlineCompletionProvider {
  readonly identifier = PROVIDER_ID;
  readonly name = 'Codestral';
  // Opt-in: each request is paid. The debounce keeps it to one request per pause.
  readonly schema: ISettingRegistry.IProperty = {
    default: { enabled: false, debouncerDelay: 350, timeout: 10000 }
  };

  /** Every answer (or failure) of the server, for the status bar. */
  get replied(): ISignal<this, ICompletionReply> {
    return this._replied;
  }

  configure(settings: { [property: string]: ReadonlyPartialJSONValue }): void {
    const delay = Number(settings.debouncerDelay ?? 0);
    this._extraDelay = Math.max(0, MIN_DEBOUNCE_MS - delay);
  }

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList> {
    this._abort?.abort();
    const abort = new AbortController();
    this._abort = abort;
    const where = notebookContext(context.widget);
    if (where === null) {
      return { items: [] };
    }
    try {
      if (
        this._extraDelay > 0 &&
        context.triggerKind === InlineCompletionTriggerKind.Automatic
      ) {
        await sleep(this._extraDelay);
      }
      if (abort.signal.aborted) {
        return { items: [] };
      }
      const reply = await requestAPI<ICompletionReply>('completion', {
        method: 'POST',
        signal: abort.signal,
        body: JSON.stringify({
          prefix: request.text.slice(0, request.offset),
          suffix: request.text.slice(request.offset),
          above: where.above,
          path: where.path
        })
      });
      this._replied.emit(reply);
      if (abort.signal.aborted || activeSource(context.widget) !== request.text) {
        return { items: [] }; // typed on meanwhile: this answer is for an older text
      }
      return { items: reply.completion ? [{ insertText: reply.completion }] : [] };
    } catch (error) {
      if (!abort.signal.aborted) {
        this._replied.emit({ completion: '', status: 'error', reason: String(error) });
      }
      return { items: [] };
    } finally {
      if (this._abort === abort) {
        this._abort = null;
      }
    }
  }

  private _abort: AbortController | null = null;
  private _extraDelay = 0;
  private _replied = new Signal<this, ICompletionReply>(this);
}

/**
 * The notebook's path and the code of the code cells above the active one, nearest
 * first; null where there is nothing to complete (not a code cell of a notebook).
 */
function notebookContext(widget: Widget): { path: string; above: string[] } | null {
  if (!(widget instanceof NotebookPanel)) {
    return null;
  }
  const notebook = widget.content;
  const index = notebook.activeCellIndex;
  if (notebook.activeCell?.model.type !== 'code') {
    return null;
  }
  const above: string[] = [];
  let size = 0;
  for (let i = index - 1; i >= 0 && size < MAX_ABOVE_CHARS; i--) {
    const model = notebook.widgets[i].model;
    if (model.type === 'code') {
      const source = model.sharedModel.getSource();
      above.push(source);
      size += source.length;
    }
  }
  return { path: widget.context.path, above };
}

/** The active cell's text now (null outside a notebook). */
function activeSource(widget: Widget): string | null {
  return widget instanceof NotebookPanel
    ? (widget.content.activeCell?.model.sharedModel.getSource() ?? null)
    : null;
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}
