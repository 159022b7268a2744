// The invoke form, built from `actionCatalog`: the action, one field per
// parameter (labelled with the parameter's name), the provider, the reason
// and an optional idempotency key. The gateway validates; its errors are
// shown next to the field that `extensions.field` names.

import { request } from './api.js';
import { el, indicatorOf, localInputToIso } from './format.js';

const INVOKE = `mutation DashboardInvoke($input: InvokeActionInput!) {
  invokeAction(input: $input) {
    id name status parameters { name value } vendorInformation { provider }
    user appId createdDateTime lastActionDateTime cancelRequestedDateTime errorInfo { message }
  }
}`;

/** Parameters whose values are timestamps get a date-time picker. */
const isTimestamp = (name) => /DateTime$/.test(name);

/**
 * Builds the form in `ui` for `catalog`; `onInvoked(action)` gets each
 * action made. `canWrite` false leaves the form shown but disabled.
 */
export function startInvoke({ ui, catalog, canWrite, onInvoked }) {
  let parameterInputs = []; // [{ name, input, error }]
  // The idempotency key of the last attempt, kept while the input is the
  // same: a retry after a network failure cannot make a second action.
  let attempt = null;

  ui.action.replaceChildren(...catalog.map((a) => el('option', { value: a.name }, a.name)));

  function definition() {
    return catalog.find((a) => a.name === ui.action.value);
  }

  function buildFields() {
    const action = definition();
    ui.actionHint.textContent = action ? action.description : '';
    parameterInputs = [];
    ui.parameters.replaceChildren(
      ...(action ? action.parameters : []).map((p) => {
        const id = `invoke-parameter-${p.name}`;
        const input = el('input', {
          id,
          name: `parameter:${p.name}`,
          type: isTimestamp(p.name) ? 'datetime-local' : 'text',
          step: isTimestamp(p.name) ? '1' : null,
          required: p.required,
          autocomplete: 'off',
          spellcheck: 'false',
          'aria-describedby': `${id}-hint ${id}-error`,
        });
        const error = el('p', { id: `${id}-error`, className: 'field-error' });
        parameterInputs.push({ name: p.name, input, error });
        return el(
          'div',
          { className: 'field' },
          el('label', { for: id }, p.name),
          input,
          el('p', { id: `${id}-hint`, className: 'hint' }, p.required ? p.description : `${p.description} (optional)`),
          error,
        );
      }),
    );
    const providers = action ? action.providers : [];
    ui.provider.replaceChildren(
      ...(providers.length === 1 ? [] : [el('option', { value: '' }, 'Default provider')]),
      ...providers.map((name) => el('option', { value: name }, name)),
    );
    clearErrors();
  }

  function fieldErrorTargets() {
    return [
      [ui.action, ui.actionError],
      [ui.provider, ui.providerError],
      [ui.reason, ui.reasonError],
      [ui.clientContext, ui.clientContextError],
      ...parameterInputs.map((p) => [p.input, p.error]),
    ];
  }

  function clearErrors() {
    for (const [input, error] of fieldErrorTargets()) {
      input.removeAttribute('aria-invalid');
      error.textContent = '';
    }
    ui.formError.textContent = '';
  }

  /** The input and message element for an `extensions.field` path. */
  function targetOf(field, sentParameters) {
    if (!field) return null;
    const parameter = /^input\.parameters\[(\d+)\]/.exec(field);
    if (parameter) {
      const sent = sentParameters[Number(parameter[1])];
      const match = sent && parameterInputs.find((p) => p.name === sent.name);
      return match ? [match.input, match.error] : null;
    }
    if (field === 'input.parameters') {
      const missing = parameterInputs.find((p) => p.input.required && !p.input.value.trim()) || parameterInputs[0];
      return missing ? [missing.input, missing.error] : null;
    }
    if (field === 'input.name') return [ui.action, ui.actionError];
    if (field.startsWith('input.vendorInformation')) return [ui.provider, ui.providerError];
    if (field === 'input.actionReason') return [ui.reason, ui.reasonError];
    if (field === 'input.clientContext') return [ui.clientContext, ui.clientContextError];
    return null;
  }

  function showError(error, sentParameters) {
    const target = targetOf(error.field, sentParameters) || (error.code === 'CONFLICT' ? [ui.clientContext, ui.clientContextError] : null);
    if (target) {
      const [input, message] = target;
      input.setAttribute('aria-invalid', 'true');
      message.textContent = error.message;
      input.focus();
    } else {
      ui.formError.textContent = `${error.message} (${error.code})`;
    }
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    const parameters = parameterInputs
      .filter((p) => p.input.value.trim() !== '')
      .map((p) => ({
        name: p.name,
        value: p.input.type === 'datetime-local' ? localInputToIso(p.input.value) || p.input.value : p.input.value.trim(),
      }));
    const input = { name: ui.action.value, parameters };
    if (ui.provider.value) input.vendorInformation = { provider: ui.provider.value };
    if (ui.reason.value.trim()) input.actionReason = ui.reason.value.trim();
    const typedKey = ui.clientContext.value.trim();
    const fingerprint = JSON.stringify(input);
    if (typedKey) {
      input.clientContext = typedKey;
    } else {
      if (!attempt || attempt.fingerprint !== fingerprint) attempt = { fingerprint, key: `dashboard-${crypto.randomUUID()}` };
      input.clientContext = attempt.key;
    }

    ui.submit.disabled = true;
    ui.result.textContent = 'Invoking…';
    try {
      const data = await request(INVOKE, { input });
      const action = data.invokeAction;
      attempt = null;
      ui.result.textContent = `Invoked ${action.name} on ${indicatorOf(action)}: ${action.status}.`;
      for (const p of parameterInputs) p.input.value = '';
      ui.clientContext.value = '';
      onInvoked(action);
    } catch (error) {
      ui.result.textContent = '';
      if (error.code !== 'NETWORK') attempt = null;
      showError(error, parameters);
    } finally {
      ui.submit.disabled = !canWrite;
    }
  }

  ui.action.addEventListener('change', buildFields);
  ui.form.addEventListener('submit', submit);
  buildFields();
  ui.readOnly.hidden = canWrite;
  for (const control of ui.form.elements) control.disabled = !canWrite;

  return {
    stop() {
      ui.action.removeEventListener('change', buildFields);
      ui.form.removeEventListener('submit', submit);
    },
  };
}
