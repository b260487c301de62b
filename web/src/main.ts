// Hash routing: `#/` lists the sales, `#/sales/{saleId}` shows one. Static hosting needs no
// rewrite rules this way.

import './style.css';
import { Api } from './api';
import { adoptTokenFromUrl, apiBase } from './config';
import { listView } from './list';
import { notFound, saleView } from './sale';

const root = document.getElementById('app');
const api = new Api(apiBase());
let cleanup: () => void = () => {};

function route(moveFocus: boolean): void {
  if (!root) return;
  cleanup();
  cleanup = () => {};
  const path = location.hash.replace(/^#/, '') || '/';
  const sale = /^\/sales\/([^/]+)\/?$/.exec(path);
  if (path === '/') cleanup = listView(root, api);
  else if (sale) cleanup = saleView(root, api, safeDecode(sale[1]));
  else notFound(root);
  // Tell screen reader and keyboard users that the page changed.
  if (moveFocus) root.querySelector<HTMLElement>('h1')?.focus();
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

adoptTokenFromUrl();
window.addEventListener('hashchange', () => route(true));
route(false);
