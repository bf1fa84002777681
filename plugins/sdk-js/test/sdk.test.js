// Tests of tagship-plugin.js under Node, with the fake host. Run: `npm test` (or
// `node --test test/*.test.js`) in plugins/sdk-js.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  fakeHost,
  host,
  respond,
  hostError,
  outcome,
  deployContext,
} from '../tagship-plugin-testing.js';

const sdk = await import('../tagship-plugin.js');

test('config: a set value, undefined when unset; configOr falls back on blank', () => {
  fakeHost({ config: { url: 'http://a/', blank: '  ' } });
  assert.equal(sdk.config('url'), 'http://a/');
  assert.equal(sdk.config('nope'), undefined);
  assert.equal(sdk.configOr('blank', 'dflt'), 'dflt');
  assert.equal(sdk.configOr('url', 'dflt'), 'http://a/');
});

test('requireConfig throws an Error naming the key and where to set it', () => {
  fakeHost({ config: { empty: '' } });
  for (const key of ['url', 'empty']) {
    assert.throws(() => sdk.requireConfig(key), {
      name: 'Error',
      message: `missing config key \`${key}\`: set it under [plugins.NAME.config]`,
    });
  }
});

test('secret: granted value, undefined when not granted or empty; requireSecret explains', () => {
  fakeHost({ secrets: { TOKEN: 's3cr3t', EMPTY: '' } });
  assert.equal(sdk.secret('TOKEN'), 's3cr3t');
  assert.equal(sdk.secret('EMPTY'), undefined);
  assert.equal(sdk.secret('OTHER'), undefined);
  assert.throws(() => sdk.requireSecret('OTHER'), /secret `OTHER` is not granted or not set/);
});

test('logging joins arguments: strings, JSON, Errors described', () => {
  fakeHost();
  sdk.info('answered', 200, { ok: true });
  sdk.warn('oops', new TypeError('bad'));
  sdk.error('x');
  sdk.debug('d');
  sdk.trace('t');
  assert.deepEqual(
    host.logs.map((line) => line.level),
    ['info', 'warn', 'error', 'debug', 'trace'],
  );
  assert.equal(host.logs[0].message, 'answered 200 {"ok":true}');
  assert.match(host.logs[1].message, /^oops TypeError: bad \(at .*sdk\.test\.js:\d+:\d+\)$/);
  assert.throws(() => sdk.log('loud', 'x'), /unknown log level/);
});

test('get returns status, headers, body bytes, text, json, ok, header()', () => {
  fakeHost({
    fetch: () => respond(200, '{"status":"ok","name":"caf\u00e9 \u2615"}', { 'X-Version': 'v3' }),
  });
  const response = sdk.get('http://svc/health', { Accept: 'application/json' });
  assert.equal(response.status, 200);
  assert.equal(response.ok, true);
  assert.ok(response.body instanceof Uint8Array);
  assert.deepEqual(response.headers, [['x-version', 'v3']]);
  assert.equal(response.header('X-VERSION'), 'v3');
  assert.equal(response.header('missing'), undefined);
  assert.equal(response.json().name, 'caf\u00e9 \u2615');
  assert.equal(response.text(), '{"status":"ok","name":"caf\u00e9 \u2615"}');
  assert.deepEqual(host.requests[0].headers, [['Accept', 'application/json']]);
  assert.equal(host.requests[0].method, 'GET');
  assert.equal(host.requests[0].body, undefined);
});

test('postJson sends JSON as UTF-8 with a content type, unless one is given', () => {
  fakeHost({ fetch: () => respond(204) });
  const response = sdk.postJson('http://hook/x', { text: 'd\u00e9ploy\u00e9' }, { 'X-A': '1' });
  assert.equal(response.ok, true);
  const sent = host.requests[0];
  assert.equal(sent.method, 'POST');
  assert.equal(sent.bodyText, '{"text":"d\u00e9ploy\u00e9"}');
  assert.deepEqual(sent.headers, [['X-A', '1'], ['content-type', 'application/json']]);
  sdk.postJson('http://hook/x', [1], [['Content-Type', 'application/vnd+json']]);
  assert.deepEqual(host.requests[1].headers, [['Content-Type', 'application/vnd+json']]);
});

test('request takes a Map of headers and a byte body; absent header values are dropped', () => {
  fakeHost({ fetch: () => respond(201) });
  sdk.request({
    method: 'put',
    url: 'http://svc/x',
    headers: new Map([['a', 'b'], ['c', undefined]]),
    body: new Uint8Array([1, 2]),
  });
  assert.equal(host.requests[0].method, 'PUT');
  assert.deepEqual(host.requests[0].headers, [['a', 'b']]);
  assert.deepEqual([...host.requests[0].body], [1, 2]);
  assert.throws(() => sdk.request({ url: 'http://svc/', body: 42 }), TypeError);
  assert.throws(() => sdk.request({}), /url/);
});

test('host http errors become HttpErrors with one-line descriptions', () => {
  const cases = [
    ['denied', 'denied: '],
    ['invalid-request', 'invalid request: '],
    ['timeout', 'timeout: '],
    ['too-large', 'response too large: '],
    ['connection', 'connection failed: '],
  ];
  for (const [kind, prefix] of cases) {
    fakeHost({
      fetch: () => {
        throw hostError(kind, 'GET http://svc: why');
      },
    });
    assert.throws(() => sdk.request({ url: 'http://svc/secret?token=x' }), (e) => {
      assert.ok(e instanceof sdk.HttpError);
      assert.equal(e.kind, kind);
      assert.equal(e.message, `${prefix}GET http://svc: why`);
      return true;
    });
    assert.throws(() => sdk.get('http://svc/a'), {
      name: 'HttpError',
      message: `GET http://svc/a: ${prefix}GET http://svc: why`,
    });
    assert.throws(() => sdk.postJson('http://svc/b', {}), {
      message: `POST http://svc/b: ${prefix}GET http://svc: why`,
    });
  }
});

test('without a fake fetch every request is denied', () => {
  fakeHost();
  assert.throws(() => sdk.get('http://svc/a'), (e) => e.kind === 'denied');
});

test('json() of a non-JSON body and errorForStatus() name the body, not the URL', () => {
  fakeHost({ fetch: () => respond(503, '<html>\n  down   for maintenance</html>') });
  const response = sdk.get('http://svc/a');
  assert.equal(response.ok, false);
  assert.throws(() => response.json(), {
    message: /^response body is not JSON \([^\n]*\): <html> down for maintenance<\/html>$/,
  });
  assert.throws(() => response.errorForStatus(), {
    message: 'HTTP 503: <html> down for maintenance</html>',
  });
  assert.equal(sdk.statusError(404, new Uint8Array(0)), 'HTTP 404');
  assert.equal(new sdk.Response({ status: 200, headers: [], body: new Uint8Array(300).fill(97) }).excerpt().length, 201);
});

test('report builders', () => {
  assert.deepEqual(sdk.healthy('fine'), { status: 'healthy', value: null, threshold: null, reason: 'fine' });
  assert.deepEqual(sdk.unhealthy('down', { value: 503, threshold: '== 200' }), {
    status: 'unhealthy',
    value: 503,
    threshold: '== 200',
    reason: 'down',
  });
  assert.equal(sdk.unknown('no data').status, 'unknown');
  assert.deepEqual(sdk.compatible('static rule: ok'), { compatible: true, reasons: ['static rule: ok'] });
  assert.deepEqual(sdk.incompatible(['a', 'b']), { compatible: false, reasons: ['a', 'b'] });
});

test('healthCheck: a report is the ok value, normalized', () => {
  const health = sdk.healthCheck((ctx) => ({ status: 'healthy', reason: `ok on ${ctx.stage}`, value: '1' }));
  assert.deepEqual(outcome(() => health.check(deployContext())), {
    ok: { status: 'healthy', value: 1, threshold: null, reason: 'ok on gstg-cny' },
  });
});

test('healthCheck: a thrown Error becomes "Name: message (at file:line:col)"', () => {
  const health = sdk.healthCheck(() => {
    throw new Error('the registry said no');
  });
  const { err } = outcome(() => health.check(deployContext()));
  assert.match(err, /^Error: the registry said no \(at .*\/test\/sdk\.test\.js:\d+:\d+\)$/);
});

test('healthCheck: a thrown string stays itself; other values are shown', () => {
  const throwing = (value) =>
    sdk.healthCheck(() => {
      throw value;
    });
  assert.deepEqual(outcome(() => throwing('plain text').check(deployContext())), { err: 'plain text' });
  assert.deepEqual(outcome(() => throwing(42).check(deployContext())), { err: '42' });
  assert.deepEqual(outcome(() => throwing({ code: 7 }).check(deployContext())), { err: '{"code":7}' });
  assert.deepEqual(outcome(() => throwing(undefined).check(deployContext())), { err: 'undefined' });
  assert.deepEqual(outcome(() => throwing(null).check(deployContext())), { err: 'null' });
});

test('healthCheck: an HTTP error names the author\'s line, not the SDK\'s', () => {
  fakeHost({
    fetch: () => {
      throw hostError('denied', 'GET http://svc: host svc is not granted');
    },
  });
  const health = sdk.healthCheck(() => sdk.get('http://svc/health'));
  const { err } = outcome(() => health.check(deployContext()));
  assert.match(
    err,
    /^HttpError: GET http:\/\/svc\/health: denied: GET http:\/\/svc: host svc is not granted \(at .*sdk\.test\.js:\d+:\d+\)$/,
  );
});

test('healthCheck: an error thrown by a raw host import shows its payload', () => {
  const health = sdk.healthCheck(() => {
    throw hostError('timeout', 'GET http://svc: took too long');
  });
  assert.match(outcome(() => health.check(deployContext())).err, /^Error: timeout: GET http:\/\/svc: took too long/);
});

test('healthCheck: causes are appended; long texts are cut', () => {
  const health = sdk.healthCheck(() => {
    throw new Error('outer', { cause: 'inner text' });
  });
  assert.match(outcome(() => health.check(deployContext())).err, /^Error: outer \(at .*\); caused by inner text$/);
  const long = sdk.healthCheck(() => {
    throw 'x'.repeat(20000);
  });
  assert.equal(outcome(() => long.check(deployContext())).err.length, sdk.MAX_ERROR_CHARS + 1);
});

test('healthCheck: returning something that is not a report is an error, not an abort', () => {
  for (const [value, shown] of [
    [undefined, 'nothing'],
    ['healthy', '"healthy"'],
    [{ status: 'fine' }, '{"status":"fine"}'],
  ]) {
    const health = sdk.healthCheck(() => value);
    assert.equal(
      outcome(() => health.check(deployContext())).err,
      `the check returned ${shown}, not a health report: return healthy(reason), unhealthy(reason) or unknown(reason)`,
    );
  }
});

test('healthCheck: async functions resolve and reject the same way', async () => {
  const good = sdk.healthCheck(async () => sdk.healthy('later'));
  assert.equal((await outcome(() => good.check(deployContext()))).ok.reason, 'later');
  const bad = sdk.healthCheck(async () => {
    throw new RangeError('later no');
  });
  assert.match((await outcome(() => bad.check(deployContext()))).err, /^RangeError: later no \(at /);
});

test('notifier: ok is nothing; a throw is the error', () => {
  const seen = [];
  const notify = sdk.notifier((event) => {
    seen.push(event.kind);
    return 'ignored';
  });
  assert.deepEqual(outcome(() => notify.notify({ kind: 'test', context: deployContext() })), { ok: undefined });
  assert.deepEqual(seen, ['test']);
  const failing = sdk.notifier(() => {
    throw new Error('webhook said 500');
  });
  assert.match(outcome(() => failing.notify({ kind: 'test' })).err, /^Error: webhook said 500 \(at /);
});

test('compatCheck: reports and errors', () => {
  const compat = sdk.compatCheck((ctx) =>
    ctx.appVersion == null ? sdk.incompatible('no app version') : sdk.compatible([`app ${ctx.appVersion}`]),
  );
  assert.deepEqual(outcome(() => compat.check(deployContext({ appVersion: 'v17.5.0' }))), {
    ok: { compatible: true, reasons: ['app v17.5.0'] },
  });
  assert.deepEqual(outcome(() => compat.check(deployContext({ appVersion: null }))), {
    ok: { compatible: false, reasons: ['no app version'] },
  });
  const wrong = sdk.compatCheck(() => sdk.healthy('x'));
  assert.match(outcome(() => wrong.check(deployContext())).err, /not a compat report/);
});

test('wrappers take functions', () => {
  assert.throws(() => sdk.healthCheck({}), /healthCheck\(\) takes a function/);
  assert.throws(() => sdk.notifier(), TypeError);
  assert.throws(() => sdk.compatCheck('x'), TypeError);
});

test('describeError reads SpiderMonkey and QuickJS stacks, skipping the SDK and bindings', () => {
  const sm = { name: 'Error', message: 'no', stack: 'get@tagship-plugin.js:10:5\ncheck@app.js:13:16\nexport_health@/tmp/x/sources/initializer.js:532:29\n' };
  assert.equal(sdk.describeError(sm), 'Error: no (at app.js:13:16)');
  const qjs = { name: 'TypeError', message: 'no', stack: '    at request (/tagship-plugin.js:200:3)\n    at check (/app.js:15:20)\n' };
  assert.equal(sdk.describeError(qjs), 'TypeError: no (at /app.js:15:20)');
  const bare = { name: 'Error', message: 'no', stack: '' };
  assert.equal(sdk.describeError(bare), 'Error: no');
  const nameless = new Error('');
  assert.match(sdk.describeError(nameless), /^Error \(at /);
});

test('describeError names the author\'s line also when a bundler put the SDK into app.js', async () => {
  const { mkdtempSync, readFileSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { pathToFileURL } = await import('node:url');
  const sdkSource = readFileSync(new URL('../tagship-plugin.js', import.meta.url), 'utf8');
  const bundle = `${sdkSource}\nexport const health = healthCheck(() => requireConfig('url'));\n`;
  const file = join(mkdtempSync(join(tmpdir(), 'tagship-sdk-')), 'bundle.mjs');
  writeFileSync(file, bundle);
  const authorLine = bundle.split('\n').length - 1;
  const { health } = await import(pathToFileURL(file).href);
  fakeHost();
  const { err } = outcome(() => health.check(deployContext()));
  assert.match(err, new RegExp(`^Error: missing config key \`url\`: .* \\(at .*bundle\\.mjs:${authorLine}:\\d+\\)$`));
});

// UTF-8: the portable code (used where TextDecoder/TextEncoder are missing, as in QuickJS)
// must agree with Node's.

function randomBytes(length, seed) {
  let x = seed;
  const bytes = new Uint8Array(length);
  const interesting = [0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xa0, 0xed, 0x9f, 0xef, 0xf0, 0x90, 0xf4, 0x8f, 0xf5, 0xff];
  for (let i = 0; i < length; i += 1) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x % 3 === 0 ? interesting[(x >>> 8) % interesting.length] : (x >>> 16) & 0xff;
  }
  return bytes;
}

test('utf8DecodePortable agrees with TextDecoder, valid and invalid input', () => {
  const decoder = new TextDecoder();
  const samples = [
    new TextEncoder().encode('plain ascii, caf\u00e9, \u2615, \u{1f680}, \u0000 end'),
    Uint8Array.from([0xe0, 0x80, 0x41]),
    Uint8Array.from([0xed, 0xa0, 0x80]),
    Uint8Array.from([0xf0, 0x9f, 0x98]),
    Uint8Array.from([0xf4, 0x90, 0x80, 0x80]),
    Uint8Array.from([0xc0, 0xaf, 0xe2, 0x82]),
    new Uint8Array(10000).fill(0xe2),
  ];
  for (let seed = 1; seed <= 300; seed += 1) samples.push(randomBytes(1 + (seed % 64), seed));
  for (const bytes of samples) {
    assert.equal(sdk.utf8DecodePortable(bytes), decoder.decode(bytes), `bytes ${[...bytes.slice(0, 16)]}`);
  }
});

test('utf8EncodePortable agrees with TextEncoder, lone surrogates included', () => {
  const encoder = new TextEncoder();
  const samples = ['', 'abc', 'caf\u00e9 \u2615 \u{1f680}', '\ud800', 'a\udc00b', '\ud83d\ude80\ud83d', '\u07ff\u0800\uffff'];
  for (let seed = 1; seed <= 200; seed += 1) {
    let s = '';
    let x = seed;
    for (let i = 0; i < 40; i += 1) {
      x = (x * 1103515245 + 12345) >>> 0;
      s += String.fromCharCode(x % 4 === 0 ? 0xd800 + (x % 0x800) : (x >>> 8) & 0xffff);
    }
    samples.push(s);
  }
  for (const text of samples) {
    assert.deepEqual([...sdk.utf8EncodePortable(text)], [...encoder.encode(text)]);
  }
});
