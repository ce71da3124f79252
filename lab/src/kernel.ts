import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { IGeneratedMark, Placed, placeGenerated } from './cells';

/** The comm the kernel opens at `%load_ext mistral_magic` (mistral_magic/labcomm.py). */
export const COMM_TARGET = 'mistral_magic.lab';
export const PROTOCOL_VERSION = 1;

/** One model's line of the kernel's spend. */
export interface IModelSpend {
  model: string;
  calls: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost: number | null;
}

/** The kernel's session spend, as its comm sends it (at most a few times a second). */
export interface ISpend {
  type: 'spend';
  version: number;
  spent_usd: number;
  cost_known: boolean;
  calls: number;
  budget_usd: number | null;
  held_usd: number;
  running: boolean;
  models: IModelSpend[];
}

/**
 * Follows every notebook's kernel: its spend (over the comm) and the code cells it
 * generates (a marked `set_next_input` payload, placed by `placeGenerated` instead of
 * inserted again on every run).
 */
export class KernelLinks {
  /** Emitted with a kernel's id when its spend changed. */
  get spendChanged(): ISignal<this, string> {
    return this._spendChanged;
  }

  /** Emitted after generated code was placed, with what was done. */
  get placed(): ISignal<this, Placed> {
    return this._placed;
  }

  spend(kernel: Kernel.IKernelConnection | null | undefined): ISpend | null {
    return kernel ? (this._spend.get(kernel.id) ?? null) : null;
  }

  /** Follow a notebook panel's kernel, now and after every change of kernel. */
  watch(panel: NotebookPanel): void {
    const context = panel.sessionContext;
    const follow = (): void => {
      const kernel = context.session?.kernel;
      if (kernel && !this._kernels.has(kernel)) {
        this._kernels.add(kernel);
        this._follow(kernel, panel);
      }
    };
    context.kernelChanged.connect(follow);
    follow();
  }

  private _follow(kernel: Kernel.IKernelConnection, panel: NotebookPanel): void {
    kernel.registerCommTarget(COMM_TARGET, (comm, msg) => {
      this._listen(kernel, comm);
      this._receive(kernel, msg.content.data);
    });
    kernel.statusChanged.connect((_, status) => {
      if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
        this._forget(kernel);
      }
    });
    kernel.connectionStatusChanged.connect((_, status) => {
      if (status === 'connected') {
        void this._reattach(kernel);
      }
    });
    kernel.anyMessage.connect((_, args) => {
      // Only replies to this page's own requests: another tab on the same kernel (or a
      // collaborator) places its own generated cells.
      const parent = args.msg.parent_header as Partial<KernelMessage.IHeader>;
      if (args.direction === 'recv' && parent.session === kernel.clientId) {
        this._takePayload(args.msg, panel);
      }
    });
    kernel.disposed.connect(() => this._forget(kernel));
    void this._reattach(kernel);
  }

  /** After a page reload the kernel's comm is already open: find it and say hello. */
  private async _reattach(kernel: Kernel.IKernelConnection): Promise<void> {
    if (kernel.connectionStatus !== 'connected') {
      return;
    }
    let reply: KernelMessage.ICommInfoReplyMsg;
    try {
      reply = await kernel.requestCommInfo({ target_name: COMM_TARGET });
    } catch {
      return; // the kernel went away meanwhile
    }
    if (reply.content.status !== 'ok') {
      return;
    }
    for (const id of Object.keys(reply.content.comms)) {
      if (!kernel.hasComm(id)) {
        const comm = kernel.createComm(COMM_TARGET, id);
        this._listen(kernel, comm);
        comm.send({ type: 'hello', version: PROTOCOL_VERSION });
      }
    }
  }

  private _listen(kernel: Kernel.IKernelConnection, comm: Kernel.IComm): void {
    comm.onMsg = msg => this._receive(kernel, msg.content.data);
    comm.onClose = () => this._forget(kernel);
  }

  private _receive(kernel: Kernel.IKernelConnection, data: JSONObject): void {
    if (data.type === 'spend' && typeof data.spent_usd === 'number') {
      this._spend.set(kernel.id, data as unknown as ISpend);
      this._spendChanged.emit(kernel.id);
    }
  }

  private _forget(kernel: Kernel.IKernelConnection): void {
    if (this._spend.delete(kernel.id)) {
      this._spendChanged.emit(kernel.id);
    }
  }

  /**
   * Take the kernel's marked `set_next_input` out of an execute reply and place it.
   *
   * `anyMessage` is emitted before the reply reaches the cell executor, which would
   * insert the cell again; a payload without the mark (or any other front end) keeps
   * today's behaviour.
   */
  private _takePayload(msg: KernelMessage.IMessage, panel: NotebookPanel): void {
    if (msg.header.msg_type !== 'execute_reply' || panel.context.isDisposed) {
      return;
    }
    const content = msg.content as KernelMessage.IExecuteReply;
    const payload = content.payload;
    if (!Array.isArray(payload)) {
      return;
    }
    const index = payload.findIndex(
      item =>
        item.source === 'set_next_input' &&
        typeof item.text === 'string' &&
        isMark(item.mistral_magic)
    );
    if (index === -1) {
      return;
    }
    const [item] = payload.splice(index, 1);
    const done = placeGenerated(
      panel.context.model.sharedModel,
      item.text as string,
      item.mistral_magic as unknown as IGeneratedMark
    );
    this._placed.emit(done);
  }

  private _kernels = new WeakSet<Kernel.IKernelConnection>();
  private _spend = new Map<string, ISpend>();
  private _spendChanged = new Signal<this, string>(this);
  private _placed = new Signal<this, Placed>(this);
}

function isMark(value: unknown): boolean {
  const mark = value as IGeneratedMark | undefined;
  return typeof mark?.generated_by === 'string' && typeof mark.kind === 'string';
}
