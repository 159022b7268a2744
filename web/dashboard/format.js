// Small pure helpers to show API values: times, indicators, status badges.

/** Every status, in the order of the lifecycle. */
export const STATUSES = ['NOT_STARTED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELED'];

/** Statuses from which `cancelAction` does something. */
export const CANCELABLE = new Set(['NOT_STARTED', 'RUNNING', 'COMPLETED']);

/** Creates an element with attributes and children (strings become text). */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'className') element.className = value;
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A `<time>` showing an RFC 3339 timestamp in the browser's time zone. */
export function time(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return el('time', { datetime: iso, title: iso }, timeFormat.format(date));
}

/** The parameter values of an action, the indicator first. */
export function indicatorOf(action) {
  return action.parameters.map((p) => p.value).join(', ');
}

/** A status badge whose text is the status as the API names it. */
export function statusBadge(status) {
  return el('span', { className: `status status-${status} ${status}` }, status);
}

/** `datetime-local` input value → RFC 3339 (UTC), or null when empty. */
export function localInputToIso(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
