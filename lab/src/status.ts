import { Widget } from '@lumino/widgets';

import { formatCost } from './format';
import { ICompletionReply } from './provider';

/** A status-bar item: one line of text (never markup), a tooltip, a click action. */
export class StatusText extends Widget {
  constructor(className: string, onClick: () => void) {
    super();
    this.addClass('jp-MistralMagic-status');
    this.addClass(className);
    this.node.addEventListener('click', onClick);
  }

  setText(text: string, title: string, warn = false): void {
    this.node.textContent = text;
    this.node.title = title;
    this.toggleClass('jp-mod-refused', warn);
  }
}

/** What the Codestral item says: the switch, today's spend, a refusal's reason. */
export function completionText(
  enabled: boolean,
  last: ICompletionReply | null
): { text: string; title: string; warn: boolean } {
  if (!enabled) {
    return {
      text: 'Codestral: off',
      title: 'Codestral completion as you type is off (each completion is a paid request). Click to turn it on.',
      warn: false
    };
  }
  const title = 'Codestral completion as you type is on. Click to turn it off.';
  if (last === null) {
    return { text: 'Codestral: on', title, warn: false };
  }
  if (last.status === 'refused' || last.status === 'error') {
    return {
      text: `Codestral: ${last.status}`,
      title: `${last.reason ?? last.status}\n${title}`,
      warn: true
    };
  }
  const today =
    last.spent_today === undefined
      ? ''
      : ` · ${formatCost(last.spent_today)} of ${formatCost(last.cap_usd)} today`;
  return {
    text: `Codestral: on${today}`,
    title: `${last.model ?? 'codestral'} on ${last.backend ?? 'its backend'}; today's completions cost ${formatCost(last.spent_today)} of a ${formatCost(last.cap_usd)} daily cap.\n${title}`,
    warn: false
  };
}
