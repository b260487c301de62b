// The remaining-stock bar: a progressbar for assistive technology, a coloured fill for the eye.

import { h, setText } from './dom';

export function stockBar(label: string): HTMLElement {
  return h(
    'div',
    { class: 'stock' },
    h('div', { class: 'bar', role: 'progressbar', 'aria-label': label, 'aria-valuemin': 0 }, h('span', { class: 'fill' })),
    h('p', { class: 'stock-text' }),
  );
}

export function stockText(remaining: number, total: number): string {
  return remaining > 0 ? `${remaining} of ${total} left` : `None of ${total} left`;
}

export function updateStockBar(el: HTMLElement, remaining: number, total: number): void {
  const bar = el.querySelector<HTMLElement>('.bar');
  const fill = el.querySelector<HTMLElement>('.fill');
  const text = el.querySelector<HTMLElement>('.stock-text');
  if (!bar || !fill || !text) return;
  const share = total > 0 ? Math.min(1, Math.max(0, remaining / total)) : 0;
  const words = stockText(remaining, total);
  bar.setAttribute('aria-valuemax', String(total));
  bar.setAttribute('aria-valuenow', String(remaining));
  bar.setAttribute('aria-valuetext', words);
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  fill.className = `fill ${share > 0.5 ? 'plenty' : share > 0.1 ? 'some' : 'few'}`;
  setText(text, words);
}
