// `#/`: every sale, refreshed every few seconds, updated in place so keyboard focus stays put.

import type { Api, SaleState, SaleStatus } from './api';
import { h, setText } from './dom';
import { clockOffset, countdownText, failureMessage, formatPrice, STATE_LABEL, stateAt } from './format';
import { roomNote } from './room';
import { stockBar, updateStockBar } from './stock';

const REFRESH_MS = 5000;
const ORDER: Record<SaleState, number> = { active: 0, upcoming: 1, sold_out: 2, ended: 3 };

interface Card {
  item: HTMLLIElement;
  badge: HTMLElement;
  when: HTMLElement;
  bar: HTMLElement;
  room: HTMLElement;
}

export function listView(root: HTMLElement, api: Api): () => void {
  const note = h('p', { class: 'muted' }, 'Loading sales…');
  const list = h('ul', { class: 'sales', 'aria-label': 'Sales' });
  root.replaceChildren(h('h1', { tabindex: -1 }, 'Sales'), note, list);
  document.title = 'Sales · Flash sale';

  let sales: SaleStatus[] = [];
  let offset = 0;
  let cards = new Map<string, Card>();
  let stopped = false;
  let timer = 0;

  const render = () => {
    const now = Date.now() + offset;
    const ids = sales.map((s) => s.saleId).join('\n');
    if ([...cards.keys()].join('\n') !== ids) {
      cards = new Map(sales.map((s) => [s.saleId, card(s)]));
      list.replaceChildren(...[...cards.values()].map((c) => c.item));
    }
    for (const sale of sales) {
      const c = cards.get(sale.saleId);
      if (!c) continue;
      const state = stateAt(sale, now);
      setText(c.badge, STATE_LABEL[state]);
      c.badge.className = `badge ${state}`;
      c.item.dataset.state = state;
      setText(c.when, countdownText(sale, now));
      updateStockBar(c.bar, sale.remainingStock, sale.totalStock);
      const note = sale.queue ? roomNote(sale.queue) : '';
      setText(c.room, note);
      c.room.hidden = !note;
    }
  };

  const refresh = async () => {
    const result = await api.listSales();
    if (stopped) return;
    if (result.ok) {
      offset = clockOffset(result.value.sales[0]?.serverTime ?? '', result.receivedAt, result.ageSeconds);
      const now = Date.now() + offset;
      sales = [...result.value.sales].sort(
        (a, b) => ORDER[stateAt(a, now)] - ORDER[stateAt(b, now)] || Date.parse(a.startsAt) - Date.parse(b.startsAt),
      );
      setText(note, sales.length === 0 ? 'No sales yet. Check back soon.' : '');
      note.hidden = sales.length > 0;
      render();
    } else {
      const msg = failureMessage(result);
      setText(note, `${msg.title}. ${msg.detail}`);
      note.hidden = false;
    }
    timer = window.setTimeout(refresh, REFRESH_MS);
  };

  void refresh();
  const tick = window.setInterval(render, 1000);
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearInterval(tick);
  };
}

function card(sale: SaleStatus): Card {
  const badge = h('span', { class: 'badge' });
  const when = h('p', { class: 'when' });
  const room = h('p', { class: 'room-note', hidden: true });
  const bar = stockBar(`Items left of ${sale.name}`);
  const link = h('a', { href: `#/sales/${encodeURIComponent(sale.saleId)}`, class: 'stretched' }, sale.name);
  const item = h(
    'li',
    { class: 'card' },
    badge,
    h('h2', {}, link),
    h('p', { class: 'price' }, formatPrice(sale.priceCents, sale.currency)),
    bar,
    when,
    room,
  );
  return { item, badge, when, bar, room };
}
