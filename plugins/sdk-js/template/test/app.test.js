// Tests of app.js under Node, the host faked: `npm test` (or `node --test` after `npm run sync`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
// First: it makes `tagship:plugin/...` importable (fakes), so app.js is imported after it.
import { fakeHost, respond, hostError, outcome, deployContext } from '../tagship-plugin-testing.js';

const { health, judge } = await import('../app.js');

test('judge: 200 is healthy, anything else unhealthy; value and threshold set', () => {
  assert.deepEqual(judge('http://svc/health', 200, 'gstg-cny'), {
    status: 'healthy',
    value: 200,
    threshold: '== 200',
    reason: 'http://svc/health answered HTTP 200 on gstg-cny',
  });
  const down = judge('http://svc/health', 503, 'gstg-cny');
  assert.equal(down.status, 'unhealthy');
  assert.equal(down.reason, 'http://svc/health answered HTTP 503 on gstg-cny, expected 200');
  assert.equal(judge('http://svc/health', 204, 'gprd').status, 'unhealthy');
});

test('check: GETs the configured url and judges the answer', () => {
  const host = fakeHost({ config: { url: 'http://svc/health' }, fetch: () => respond(200, 'ok') });
  const result = outcome(() => health.check(deployContext({ stage: 'gprd-cny' })));
  assert.equal(result.ok.status, 'healthy');
  assert.equal(result.ok.reason, 'http://svc/health answered HTTP 200 on gprd-cny');
  assert.deepEqual(
    host.requests.map((request) => `${request.method} ${request.url}`),
    ['GET http://svc/health'],
  );
  assert.deepEqual(host.logs, [{ level: 'info', message: 'http://svc/health answered HTTP 200' }]);

  fakeHost({ config: { url: 'http://svc/health' }, fetch: () => respond(500, 'boom') });
  assert.equal(outcome(() => health.check(deployContext())).ok.status, 'unhealthy');
});

test('check: without `url` the error names the key', () => {
  fakeHost();
  assert.match(
    outcome(() => health.check(deployContext())).err,
    /^Error: missing config key `url`: set it under \[plugins\.NAME\.config\]/,
  );
});

test('check: a refused request is the error, with the method and URL', () => {
  fakeHost({
    config: { url: 'http://svc/health' },
    fetch: () => {
      throw hostError('denied', 'GET http://svc: host svc is not granted');
    },
  });
  assert.match(
    outcome(() => health.check(deployContext())).err,
    /^HttpError: GET http:\/\/svc\/health: denied: GET http:\/\/svc: host svc is not granted/,
  );
});

test('check: a service that does not answer is unhealthy, not an error', () => {
  for (const kind of ['connection', 'timeout']) {
    fakeHost({
      config: { url: 'http://svc/health' },
      fetch: () => {
        throw hostError(kind, 'GET http://svc: no answer');
      },
    });
    const result = outcome(() => health.check(deployContext({ stage: 'gstg' })));
    assert.equal(result.ok.status, 'unhealthy', kind);
    assert.match(result.ok.reason, /^http:\/\/svc\/health is not serving on gstg: /);
  }
});
