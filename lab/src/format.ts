/**
 * A cost as mistral_magic writes it: 'unknown', '$0', '$0.0123' (three significant
 * digits below a dollar, so a tenth of a cent stays visible) or '$1.23'.
 */
export function formatCost(cost: number | null | undefined): string {
  if (cost === null || cost === undefined || Number.isNaN(cost)) {
    return 'unknown';
  }
  if (cost === 0) {
    return '$0';
  }
  const sign = cost < 0 ? '-' : '';
  const amount = Math.abs(cost);
  if (amount >= 1) {
    return `${sign}$${amount.toLocaleString('en-US', {
      minimumFractionDigits: 2,
      maximumFractionDigits: 2
    })}`;
  }
  const decimals = Math.max(2, 2 - Math.floor(Math.log10(amount)));
  const [whole, fraction = ''] = amount
    .toFixed(decimals)
    .replace(/0+$/, '')
    .split('.');
  return `${sign}$${whole}.${fraction.padEnd(2, '0')}`;
}

/** '1 call' or '12 calls'. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
