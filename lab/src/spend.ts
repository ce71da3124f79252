import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { formatCost, plural } from './format';
import { ISpend } from './kernel';

/** The spend item's line: `Mistral: $0.0123 / $0.50 · 3 calls`, and what is running. */
export function spendText(spend: ISpend): { text: string; title: string } {
  const spent = formatCost(spend.spent_usd) + (spend.cost_known ? '' : ' + unknown');
  const budget = spend.budget_usd === null ? '' : ` / ${formatCost(spend.budget_usd)}`;
  let text = `Mistral: ${spent}${budget} · ${plural(spend.calls, 'call')}`;
  if (spend.running) {
    text += spend.held_usd > 0 ? ` · running (${formatCost(spend.held_usd)} held)` : ' · running';
  }
  const left =
    spend.budget_usd === null
      ? 'no budget set (%config MistralMagics.budget_usd = 1.0)'
      : `${formatCost(Math.max(0, spend.budget_usd - spend.spent_usd - spend.held_usd))} of the ${formatCost(spend.budget_usd)} budget left`;
  return {
    text,
    title: `This kernel's session: ${plural(spend.calls, 'call')}, ${spent}; ${left}. Click for the detail.`
  };
}

/** The meter's detail: one row per model, then the budget (text only, never markup). */
export function showSpendDetail(spend: ISpend): Promise<unknown> {
  const body = new Widget();
  body.addClass('jp-MistralMagic-detail');
  const table = document.createElement('table');
  const header = ['model', 'calls', 'tokens in', 'tokens out', 'cost'];
  const rows = spend.models.map(m => [
    m.model,
    String(m.calls),
    m.prompt_tokens.toLocaleString('en-US'),
    m.completion_tokens.toLocaleString('en-US'),
    formatCost(m.cost)
  ]);
  for (const [i, cells] of [header, ...rows].entries()) {
    const tr = table.insertRow();
    for (const text of cells) {
      const cell = document.createElement(i === 0 ? 'th' : 'td');
      cell.textContent = text;
      tr.appendChild(cell);
    }
  }
  const summary = document.createElement('p');
  summary.textContent = spendText(spend).title.replace(' Click for the detail.', '');
  body.node.append(table, summary);
  return showDialog({
    title: 'Mistral spend in this kernel',
    body,
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}
