// tagship-plugin.js: the JavaScript SDK for tagship plugins.
//
// One ES module with no dependencies. Copy it next to your plugin's entry file (the template's
// `npm run build` does) and import it relatively:
//
//     import { healthCheck, requireConfig, get, healthy, unhealthy } from './tagship-plugin.js';
//     export const health = healthCheck((ctx) => { ... });
//
// It works in the two engines that turn JavaScript into a tagship component:
// componentize-js (StarlingMonkey / SpiderMonkey) and componentize-qjs (QuickJS, which has no
// TextDecoder / TextEncoder: the SDK carries its own UTF-8 code). Under Node it runs with the
// fake host of `tagship-plugin-testing.js`.
//
// The contract is `wit/tagship.wit` (package tagship:plugin@0.1.0). The imports below are the
// WIT interfaces `host` and `http`; the engines provide them as ES modules.

import { log as hostLog, config as hostConfig, secret as hostSecret } from 'tagship:plugin/host@0.1.0';
import { fetch as hostFetch } from 'tagship:plugin/http@0.1.0';

/** The version of the WIT package this SDK was written against (its imports name it). */
export const API_VERSION = '0.1.0';

// The first line of this module that runs: stack frames from here to SDK_END are the SDK's.
const SDK_START = hereFrame();

// ---------------------------------------------------------------------------------------------
// Configuration and secrets

/**
 * The value of configuration key `key` (`[plugins.NAME.config]` in tagship.toml or
 * `--config KEY=VALUE`), after the host substituted `{{stage}}`, `{{environment}}`, ...;
 * `undefined` when it is not set.
 */
export function config(key) {
  const value = hostConfig(String(key));
  return value == null ? undefined : value;
}

/** The value of configuration key `key`, or `fallback` when it is not set or blank. */
export function configOr(key, fallback) {
  const value = config(key);
  return value === undefined || value.trim() === '' ? fallback : value;
}

/**
 * The value of configuration key `key`; throws an Error naming the key and where to set it when
 * it is missing or blank (the wrappers turn it into the check's error).
 */
export function requireConfig(key) {
  const value = config(key);
  if (value === undefined || value.trim() === '') {
    throw new Error(`missing config key \`${key}\`: set it under [plugins.NAME.config]`);
  }
  return value;
}

/**
 * The value of the secret `name`, when the operator granted it to this plugin and it is set;
 * else `undefined`. Never log it or put it into a result or an error.
 */
export function secret(name) {
  const value = hostSecret(String(name));
  return value == null || value === '' ? undefined : value;
}

/** The value of the secret `name`; throws an Error telling how to grant it when it is absent. */
export function requireSecret(name) {
  const value = secret(name);
  if (value === undefined) {
    throw new Error(
      `secret \`${name}\` is not granted or not set: grant it with \`secrets = ["${name}"]\` under ` +
        `[plugins.NAME] (or \`--secret ${name}\`) and set it in the runner's environment`,
    );
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Logging

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/**
 * Write a log line into the runner's log at `level` (`trace`, `debug`, `info`, `warn`, `error`).
 * Arguments are joined with spaces: strings as they are, Errors as `describeError` shows them,
 * anything else as JSON.
 */
export function log(level, ...args) {
  if (!LEVELS.includes(level)) throw new TypeError(`unknown log level ${JSON.stringify(level)}`);
  hostLog(level, args.map(formatArg).join(' '));
}
export const trace = (...args) => log('trace', ...args);
export const debug = (...args) => log('debug', ...args);
export const info = (...args) => log('info', ...args);
export const warn = (...args) => log('warn', ...args);
export const error = (...args) => log('error', ...args);

function formatArg(value) {
  if (typeof value === 'string') return value;
  if (isErrorLike(value)) return describeError(value);
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // a cycle or a BigInt: fall through
  }
  return safeString(value);
}

// ---------------------------------------------------------------------------------------------
// HTTP

const HTTP_ERROR_TEXT = {
  denied: 'denied',
  'invalid-request': 'invalid request',
  timeout: 'timeout',
  'too-large': 'response too large',
  connection: 'connection failed',
};

/**
 * A request that produced no response: the WIT `http-error` variant as an Error.
 * `kind` is the variant's case (`denied`, `invalid-request`, `timeout`, `too-large`,
 * `connection`), `detail` the host's text. The message is one line, e.g.
 * `denied: GET http://example.com: host example.com is not granted`.
 */
export class HttpError extends Error {
  constructor(kind, detail, context) {
    const text = `${HTTP_ERROR_TEXT[kind] ?? kind}: ${detail}`;
    super(context ? `${context}: ${text}` : text);
    this.name = 'HttpError';
    this.kind = kind;
    this.detail = detail;
  }
}

/** A response, after redirects. `headers` is a list of `[name, value]`, names in lowercase. */
export class Response {
  constructor({ status, headers, body }) {
    /** HTTP status code. */
    this.status = status;
    /** `[name, value]` pairs, names in lowercase. */
    this.headers = headers ?? [];
    /** The body bytes. */
    this.body = body instanceof Uint8Array ? body : Uint8Array.from(body ?? []);
    /** True for a 2xx status. */
    this.ok = status >= 200 && status < 300;
  }

  /** The value of header `name` (case-insensitive), the first when repeated; else undefined. */
  header(name) {
    const wanted = String(name).toLowerCase();
    const found = this.headers.find(([key]) => key.toLowerCase() === wanted);
    return found ? found[1] : undefined;
  }

  /** The body decoded as UTF-8 (invalid bytes become U+FFFD). */
  text() {
    return utf8Decode(this.body);
  }

  /** The body parsed as JSON; an Error with a body excerpt when it is not JSON. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      const why = String(e && e.message).replace(/\s+/g, ' ');
      throw new Error(`response body is not JSON (${why}): ${this.excerpt()}`);
    }
  }

  /** At most `max` bytes of the body as one line of text, `…` when cut: for messages. */
  excerpt(max = EXCERPT_BYTES) {
    return excerpt(this.body, max);
  }

  /** This response when 2xx; else throws `HTTP <status>: <body excerpt>` (no URL). */
  errorForStatus() {
    if (this.ok) return this;
    throw new Error(statusError(this.status, this.body));
  }
}

/** How many bytes of a body `excerpt()` shows. */
export const EXCERPT_BYTES = 200;

/**
 * Send one request: `{ method, url, headers, body }`. `headers` is an object, a Map or a list of
 * `[name, value]`; `body` a string (sent as UTF-8), a Uint8Array, or absent. Returns a
 * `Response` (any status); throws an `HttpError` when there is no response. Its message names
 * the method and origin, never the path or query: safe for secret URLs.
 */
export function request({ method = 'GET', url, headers, body } = {}) {
  if (typeof url !== 'string' || url === '') {
    throw new TypeError('request: `url` must be a non-empty string');
  }
  let response;
  try {
    response = hostFetch({
      method: String(method).toUpperCase(),
      url,
      headers: headerPairs(headers),
      body: body == null ? undefined : toBytes(body),
    });
  } catch (e) {
    const payload = errorPayload(e);
    if (isVariant(payload)) throw new HttpError(payload.tag, String(payload.val ?? ''));
    throw e;
  }
  return new Response(response);
}

/** `GET url`; an error names the method and the URL (do not use it for secret URLs). */
export function get(url, headers) {
  return withContext('GET', url, () => request({ method: 'GET', url, headers }));
}

/**
 * `POST url` with `value` as JSON (`Content-Type: application/json` unless `headers` sets one);
 * an error names the method and the URL (do not use it for secret URLs).
 */
export function postJson(url, value, headers) {
  const pairs = headerPairs(headers);
  if (!pairs.some(([name]) => name.toLowerCase() === 'content-type')) {
    pairs.push(['content-type', 'application/json']);
  }
  const body = JSON.stringify(value);
  if (body === undefined) throw new TypeError('postJson: the value has no JSON form');
  return withContext('POST', url, () => request({ method: 'POST', url, headers: pairs, body }));
}

function withContext(method, url, send) {
  try {
    return send();
  } catch (e) {
    if (e instanceof HttpError) throw new HttpError(e.kind, e.detail, `${method} ${url}`);
    throw e;
  }
}

/** `HTTP <status>: <body excerpt>`, or `HTTP <status>` for an empty body. */
export function statusError(status, body) {
  const text = excerpt(body ?? new Uint8Array(0), EXCERPT_BYTES);
  return text === '' ? `HTTP ${status}` : `HTTP ${status}: ${text}`;
}

function excerpt(bytes, max) {
  const cut = bytes.length > max;
  const line = utf8Decode(cut ? bytes.subarray(0, max) : bytes)
    .split(/\s+/)
    .filter((word) => word !== '')
    .join(' ');
  return cut ? `${line}…` : line;
}

function headerPairs(headers) {
  if (headers == null) return [];
  const entries =
    Array.isArray(headers) || typeof headers[Symbol.iterator] === 'function'
      ? Array.from(headers)
      : Object.entries(headers);
  const pairs = [];
  for (const entry of entries) {
    if (!Array.isArray(entry) || entry.length !== 2) {
      throw new TypeError('headers: expected an object, a Map or a list of [name, value]');
    }
    if (entry[1] == null) continue;
    pairs.push([String(entry[0]), String(entry[1])]);
  }
  return pairs;
}

function toBytes(body) {
  if (typeof body === 'string') return utf8Encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('request: `body` must be a string or a Uint8Array');
}

// ---------------------------------------------------------------------------------------------
// Reports

const HEALTH_STATUSES = ['healthy', 'unhealthy', 'unknown'];

/** A passing health report. `value`: the number measured; `threshold`: the pass condition. */
export function healthy(reason, { value, threshold } = {}) {
  return healthReport('healthy', reason, value, threshold);
}

/** A failing health report. */
export function unhealthy(reason, { value, threshold } = {}) {
  return healthReport('unhealthy', reason, value, threshold);
}

/** The check ran but could not decide (e.g. no data). */
export function unknown(reason, { value, threshold } = {}) {
  return healthReport('unknown', reason, value, threshold);
}

function healthReport(status, reason, value, threshold) {
  return {
    status,
    value: value == null ? null : Number(value),
    threshold: threshold == null ? null : String(threshold),
    reason: reason == null ? '' : String(reason),
  };
}

/** A compat report: compatible. `reasons`: one sentence per rule (a string or a list). */
export function compatible(reasons) {
  return { compatible: true, reasons: reasonList(reasons) };
}

/** A compat report: incompatible. */
export function incompatible(reasons) {
  return { compatible: false, reasons: reasonList(reasons) };
}

function reasonList(reasons) {
  if (reasons == null) return [];
  return (Array.isArray(reasons) ? reasons : [reasons]).map((reason) => String(reason));
}

// ---------------------------------------------------------------------------------------------
// Exports

/**
 * The export of a health check: `export const health = healthCheck((ctx) => report)`.
 * `ctx` is the deploy context (camelCase fields: `component`, `version`, `previousVersion`,
 * `stage`, `environment`, `pipelineUrl`, `workloads`, `appVersion`; an absent option is
 * `undefined` under componentize-js, `null` under componentize-qjs: test with `== null`).
 * Return `healthy(...)`, `unhealthy(...)` or `unknown(...)`. Anything thrown becomes the
 * check's error (the runner fails closed), as `describeError` shows it.
 */
export function healthCheck(fn) {
  requireFunction(fn, 'healthCheck');
  return { check: (ctx) => run(fn, ctx, toHealthReport) };
}

/**
 * The export of a notifier: `export const notify = notifier((event) => { ... })`. `event` has
 * `kind` (`deploy-started`, ..., `test`), `deployId`, `timestamp`, `context`, `message`.
 * Return nothing; anything thrown becomes the delivery's error (logged, never blocks a deploy).
 */
export function notifier(fn) {
  requireFunction(fn, 'notifier');
  return { notify: (event) => run(fn, event, () => undefined) };
}

/**
 * The export of a compat check: `export const compat = compatCheck((ctx) => report)`.
 * Return `compatible(reasons)` or `incompatible(reasons)`; anything thrown is the error
 * (undecided: the runner fails closed).
 */
export function compatCheck(fn) {
  requireFunction(fn, 'compatCheck');
  return { check: (ctx) => run(fn, ctx, toCompatReport) };
}

function requireFunction(fn, wrapper) {
  if (typeof fn !== 'function') throw new TypeError(`${wrapper}() takes a function`);
}

// Calls the author's function. Success: the value the WIT result's `ok` needs. Failure: throws
// a string, the one thrown value both engines turn into the result's `err` (an Error object
// makes componentize-js abort with "expected a string, received [object]").
function run(fn, arg, finish) {
  let result;
  try {
    result = fn(arg);
  } catch (e) {
    throw describeError(e);
  }
  if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
    // componentize-js awaits an export; componentize-qjs --sync does not (keep checks sync).
    return result.then(
      (value) => settle(finish, value),
      (e) => {
        throw describeError(e);
      },
    );
  }
  return settle(finish, result);
}

function settle(finish, value) {
  try {
    return finish(value);
  } catch (e) {
    throw describeError(e);
  }
}

function toHealthReport(report) {
  if (report === null || typeof report !== 'object' || !HEALTH_STATUSES.includes(report.status)) {
    // A string: the author's stack has no line to name here.
    throw (
      `the check returned ${preview(report)}, not a health report: ` +
      'return healthy(reason), unhealthy(reason) or unknown(reason)'
    );
  }
  return healthReport(report.status, report.reason, report.value, report.threshold);
}

function toCompatReport(report) {
  if (report === null || typeof report !== 'object' || typeof report.compatible !== 'boolean') {
    throw (
      `the check returned ${preview(report)}, not a compat report: ` +
      'return compatible(reasons) or incompatible(reasons)'
    );
  }
  return { compatible: report.compatible, reasons: reasonList(report.reasons) };
}

function preview(value) {
  if (value === undefined) return 'nothing';
  const text = typeof value === 'string' ? JSON.stringify(value) : formatArg(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** The longest error text the wrappers return (the runner caps a result at 1 MiB). */
export const MAX_ERROR_CHARS = 8192;

/**
 * One line of text for any thrown value: a string stays itself; an Error becomes
 * `Name: message`, plus ` (at file:line:column)` for the first stack frame outside this SDK
 * when the engine gives one, plus `; caused by ...` for its `cause`; an error of a host import
 * shows its payload (`denied: ...`); anything else its JSON or `String()`.
 */
export function describeError(thrown) {
  const text = describeValue(thrown, 0);
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text;
}

function describeValue(thrown, depth) {
  if (typeof thrown === 'string') return thrown;
  if (thrown === null || (typeof thrown !== 'object' && typeof thrown !== 'function')) {
    return safeString(thrown);
  }
  if (isErrorLike(thrown)) {
    const name = safeString(thrown.name || 'Error');
    const message = errorMessage(thrown);
    let text = message === '' ? name : `${name}: ${message}`;
    const where = authorFrame(thrown.stack);
    if (where) text += ` (at ${where})`;
    if (thrown.cause !== undefined && depth < 3) {
      text += `; caused by ${describeValue(thrown.cause, depth + 1)}`;
    }
    return text;
  }
  try {
    const json = JSON.stringify(thrown);
    if (json !== undefined && json !== '{}') return json;
  } catch {
    // fall through
  }
  return safeString(thrown);
}

// The message of an Error; for an error a host import threw (componentize-js' ComponentError,
// componentize-qjs' Error with `payload`), the payload: `denied: ...` for an http-error.
function errorMessage(e) {
  const payload = errorPayload(e);
  if (payload !== undefined) {
    if (typeof payload === 'string') return payload;
    if (isVariant(payload)) {
      return `${HTTP_ERROR_TEXT[payload.tag] ?? payload.tag}: ${safeString(payload.val ?? '')}`;
    }
    try {
      return JSON.stringify(payload) ?? safeString(payload);
    } catch {
      return safeString(payload);
    }
  }
  return e.message == null ? '' : safeString(e.message);
}

function errorPayload(e) {
  return e !== null && typeof e === 'object' && Object.prototype.hasOwnProperty.call(e, 'payload')
    ? e.payload
    : undefined;
}

function isVariant(value) {
  return value !== null && typeof value === 'object' && typeof value.tag === 'string';
}

function isErrorLike(value) {
  return (
    value instanceof Error ||
    (value !== null && typeof value === 'object' && typeof value.message === 'string' && 'stack' in value)
  );
}

function safeString(value) {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

// Where this module starts and ends (see ownFrame); `const`s are set when the module runs.
function hereFrame() {
  try {
    return parseFrames(new Error().stack)[1];
  } catch {
    return undefined;
  }
}

// Stack frames: SpiderMonkey `fn@file:line:col`; V8 and QuickJS `    at fn (file:line:col)`.
// (Literals inside: this runs before the module's later `const`s are set.)
function parseFrames(stack) {
  if (typeof stack !== 'string') return [];
  const FRAME_AT = /^\s*at (?:.*? \()?(.+?):(\d+):(\d+)\)?\s*$/;
  const FRAME_SM = /^[^@\s]*@(.+?):(\d+):(\d+)\s*$/;
  const frames = [];
  for (const line of stack.split('\n')) {
    const match = FRAME_AT.exec(line) ?? FRAME_SM.exec(line);
    if (match) frames.push({ file: match[1], line: Number(match[2]), column: Number(match[3]) });
  }
  return frames;
}

function ownFrame(frame) {
  const { file, line } = frame;
  // This module's lines, also when a bundler put it into one file with the author's code.
  if (SDK_START && SDK_END && file === SDK_START.file) {
    return line >= SDK_START.line && line <= SDK_END.line;
  }
  return (
    /(^|[/\\])tagship-plugin(-testing)?\.js$/.test(file) ||
    /(^|[/\\])initializer\.js$/.test(file) || // componentize-js' generated bindings
    file.startsWith('node:') ||
    file.startsWith('data:')
  );
}

function authorFrame(stack) {
  for (const frame of parseFrames(stack)) {
    if (ownFrame(frame)) continue;
    return `${frame.file.replace(/^file:\/\//, '')}:${frame.line}:${frame.column}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 (TextDecoder / TextEncoder when the engine has them; QuickJS has neither)

/** Bytes to text, UTF-8; invalid sequences become U+FFFD as TextDecoder does. */
export function utf8Decode(bytes) {
  if (typeof TextDecoder === 'function') return new TextDecoder().decode(bytes);
  return utf8DecodePortable(bytes);
}

/** Text to UTF-8 bytes; a lone surrogate becomes U+FFFD as TextEncoder does. */
export function utf8Encode(text) {
  if (typeof TextEncoder === 'function') return new TextEncoder().encode(text);
  return utf8EncodePortable(text);
}

/** The decoder used without TextDecoder (exported for tests). */
export function utf8DecodePortable(bytes) {
  const n = bytes.length;
  let out = '';
  let units = [];
  const flush = () => {
    out += String.fromCharCode.apply(null, units);
    units = [];
  };
  let i = 0;
  while (i < n) {
    const b0 = bytes[i];
    if (b0 < 0x80) {
      units.push(b0);
      i += 1;
    } else {
      let need = 0;
      let cp = 0;
      let lower = 0x80;
      let upper = 0xbf;
      if (b0 >= 0xc2 && b0 <= 0xdf) {
        need = 1;
        cp = b0 & 0x1f;
      } else if (b0 >= 0xe0 && b0 <= 0xef) {
        need = 2;
        cp = b0 & 0x0f;
        if (b0 === 0xe0) lower = 0xa0;
        if (b0 === 0xed) upper = 0x9f;
      } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        need = 3;
        cp = b0 & 0x07;
        if (b0 === 0xf0) lower = 0x90;
        if (b0 === 0xf4) upper = 0x8f;
      }
      let j = i + 1;
      let complete = need > 0;
      for (let k = 0; k < need; k += 1) {
        const b = j < n ? bytes[j] : -1;
        if (b < lower || b > upper) {
          complete = false;
          break;
        }
        cp = (cp << 6) | (b & 0x3f);
        lower = 0x80;
        upper = 0xbf;
        j += 1;
      }
      if (!complete) {
        units.push(0xfffd); // the maximal invalid subpart is one U+FFFD; the next byte restarts
        i = need > 0 ? j : i + 1;
      } else {
        if (cp > 0xffff) {
          cp -= 0x10000;
          units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        } else {
          units.push(cp);
        }
        i = j;
      }
    }
    if (units.length >= 4096) flush();
  }
  flush();
  return out;
}

/** The encoder used without TextEncoder (exported for tests). */
export function utf8EncodePortable(text) {
  const s = String(text);
  const out = [];
  for (let i = 0; i < s.length; i += 1) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i += 1;
      } else {
        c = 0xfffd;
      }
    }
    if (c < 0x80) {
      out.push(c);
    } else if (c < 0x800) {
      out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    } else {
      out.push(
        0xf0 | (c >> 18),
        0x80 | ((c >> 12) & 0x3f),
        0x80 | ((c >> 6) & 0x3f),
        0x80 | (c & 0x3f),
      );
    }
  }
  return Uint8Array.from(out);
}

// The last line of this module (see SDK_START).
const SDK_END = hereFrame();
