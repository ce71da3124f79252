import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { JSONObject, PartialJSONObject } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { PROVIDER_ID } from './provider';

/** The inline completer's settings, where JupyterLab keeps each provider's `enabled`. */
export const INLINE_COMPLETER = '@jupyterlab/completer-extension:inline-completer';

/**
 * Codestral completion on or off: the provider's `enabled` in the inline completer's
 * settings, so the switch is remembered, and the settings editor shows the same one.
 */
export class CompletionSwitch {
  constructor(private _registry: ISettingRegistry) {}

  /** Emitted when the switch (or any inline completer setting) changes. */
  get changed(): ISignal<this, boolean> {
    return this._changed;
  }

  get enabled(): boolean {
    const providers = (this._settings?.composite.providers ?? {}) as JSONObject;
    const mine = (providers[PROVIDER_ID] ?? {}) as JSONObject;
    return mine.enabled === true;
  }

  async load(): Promise<void> {
    this._settings = await this._registry.load(INLINE_COMPLETER);
    this._settings.changed.connect(() => this._changed.emit(this.enabled));
    this._changed.emit(this.enabled);
  }

  async toggle(): Promise<void> {
    if (this._settings === null) {
      await this.load();
    }
    const settings = this._settings!;
    const user = (settings.user.providers ?? {}) as PartialJSONObject;
    const mine = (user[PROVIDER_ID] ?? {}) as PartialJSONObject;
    await settings.set('providers', {
      ...user,
      [PROVIDER_ID]: { ...mine, enabled: !this.enabled }
    });
  }

  private _settings: ISettingRegistry.ISettings | null = null;
  private _changed = new Signal<this, boolean>(this);
}
