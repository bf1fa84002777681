// tagship-plugin-testing.js: a fake tagship host, so `node --test` can run a plugin's code.
//
// The SDK imports the WIT interfaces as `tagship:plugin/host@0.1.0` and
// `tagship:plugin/http@0.1.0`, which only exist inside the engines. Importing this module
// first registers a Node module hook that resolves them to fakes driven by `fakeHost(...)`.
// Import your plugin afterwards, dynamically:
//
//     import { fakeHost, respond, outcome, deployContext } from '../tagship-plugin-testing.js';
//     const { health } = await import('../app.js');
//
//     fakeHost({ config: { url: 'http://svc/health' }, fetch: () => respond(200, 'ok') });
//     assert.equal(outcome(() => health.check(deployContext())).ok.status, 'healthy');
//
// Needs Node 20.6 or later (`module.register`). Not for the component: never import it from
// code that is built.

import * as nodeModule from 'node:module';

const STATE = Symbol.for('tagship-plugin-testing.host');

/**
 * The fake host's state, shared with the faked imports: `config` and `secrets` (objects of
 * strings), `fetch` (a function from a request to a response, or throwing `hostError(...)`),
 * and what the plugin did: `logs` (`{ level, message }`) and `requests` (each request as the
 * host got it, plus `bodyText`).
 */
export const host = (globalThis[STATE] ??= {
  config: {},
  secrets: {},
  fetch: undefined,
  logs: [],
  requests: [],
});

/**
 * Reset the fake host: the plugin's configuration, its granted secrets, and what its requests
 * get (`fetch(request)` returning `respond(...)` or throwing `hostError(...)`; without one,
 * every request is denied as an ungranted host). Returns `host`.
 */
export function fakeHost({ config = {}, secrets = {}, fetch } = {}) {
  host.config = { ...config };
  host.secrets = { ...secrets };
  host.fetch = fetch;
  host.logs = [];
  host.requests = [];
  return host;
}

/** A response as the host returns it: header names in lowercase, the body as bytes. */
export function respond(status, body = '', headers = {}) {
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  return {
    status,
    headers: pairs.map(([name, value]) => [String(name).toLowerCase(), String(value)]),
    body: typeof body === 'string' ? new TextEncoder().encode(body) : Uint8Array.from(body),
  };
}

/**
 * What a host import throws for an `http-error`: an Error whose `payload` is the variant
 * (`kind`: `denied`, `invalid-request`, `timeout`, `too-large`, `connection`).
 */
export function hostError(kind, text) {
  const error = new Error(`${text} (see error.payload)`);
  Object.defineProperty(error, 'payload', { value: { tag: kind, val: text }, enumerable: true });
  return error;
}

/**
 * Call an export as the runner would and return the WIT result: `{ ok: value }`, or
 * `{ err: text }` when it threw (the wrappers throw the error text as a string). A promise
 * (an async check) gives a promise of the same.
 */
export function outcome(call) {
  const fail = (thrown) => {
    if (typeof thrown !== 'string') {
      throw new Error(`the export threw a ${typeof thrown}, not a string: the engine would abort`, {
        cause: thrown,
      });
    }
    return { err: thrown };
  };
  let value;
  try {
    value = call();
  } catch (thrown) {
    return fail(thrown);
  }
  if (value !== null && typeof value === 'object' && typeof value.then === 'function') {
    return value.then((ok) => ({ ok }), fail);
  }
  return { ok: value };
}

/** A deploy context as a check gets it, with `overrides` applied. */
export function deployContext(overrides = {}) {
  return {
    component: 'registry',
    version: 'v3.1.0',
    previousVersion: 'v3.0.0',
    stage: 'gstg-cny',
    environment: 'gstg',
    pipelineUrl: undefined,
    workloads: [],
    appVersion: undefined,
    ...overrides,
  };
}

// The faked WIT imports, as data: modules reading the shared state.
const FAKE_HOST = `
const host = globalThis[Symbol.for('tagship-plugin-testing.host')];
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
export function log(level, message) {
  if (!LEVELS.includes(level)) throw new TypeError('"' + level + '" is not one of the cases of level');
  if (typeof message !== 'string') throw new TypeError('expected a string, received [' + typeof message + ']');
  host.logs.push({ level, message });
}
export function config(key) {
  const value = host.config[key];
  return value === undefined || value === null ? undefined : String(value);
}
export function secret(name) {
  const value = host.secrets[name];
  return value === undefined || value === null ? undefined : String(value);
}
`;

const FAKE_HTTP = `
const host = globalThis[Symbol.for('tagship-plugin-testing.host')];
function deniedError(request) {
  let origin = request.url;
  try { origin = new URL(request.url).origin; } catch {}
  const text = request.method + ' ' + origin + ': host is not granted (the fake host has no fetch)';
  const error = new Error(text + ' (see error.payload)');
  Object.defineProperty(error, 'payload', { value: { tag: 'denied', val: text }, enumerable: true });
  return error;
}
export function fetch(request) {
  if (typeof request.url !== 'string' || typeof request.method !== 'string') {
    throw new TypeError('expected a string, received [' + typeof request.url + ']');
  }
  for (const pair of request.headers) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw new TypeError('headers must be a list of [string, string]');
    }
  }
  if (request.body != null && !(request.body instanceof Uint8Array)) {
    throw new TypeError('body must be a Uint8Array');
  }
  const seen = {
    ...request,
    bodyText: request.body == null ? undefined : new TextDecoder().decode(request.body),
  };
  host.requests.push(seen);
  if (typeof host.fetch !== 'function') throw deniedError(request);
  return host.fetch(seen);
}
`;

const dataUrl = (source) => `data:text/javascript,${encodeURIComponent(source)}`;

const HOOKS = `
const modules = {
  'tagship:plugin/host@0.1.0': ${JSON.stringify(dataUrl(FAKE_HOST))},
  'tagship:plugin/http@0.1.0': ${JSON.stringify(dataUrl(FAKE_HTTP))},
};
export async function resolve(specifier, context, next) {
  if (Object.prototype.hasOwnProperty.call(modules, specifier)) {
    return { url: modules[specifier], shortCircuit: true };
  }
  if (specifier.startsWith('tagship:')) {
    throw new Error('tagship-plugin-testing: no fake for ' + specifier + ' (this fake host serves tagship:plugin@0.1.0)');
  }
  return next(specifier, context);
}
`;

if (!globalThis[Symbol.for('tagship-plugin-testing.hooks')]) {
  if (typeof nodeModule.register !== 'function') {
    throw new Error('tagship-plugin-testing needs Node 20.6 or later (module.register)');
  }
  nodeModule.register(dataUrl(HOOKS));
  globalThis[Symbol.for('tagship-plugin-testing.hooks')] = true;
}
