// A tiny element builder. Text always goes in as text nodes, so API data is never parsed as HTML.

type Attr = string | number | boolean | undefined | ((event: Event) => void);
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), value);
    else if (value === true) el.setAttribute(name, '');
    else if (value !== false && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child) el.append(child);
  }
  return el;
}

/** Sets text only when it changed, so screen readers and selections are not disturbed. */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}
