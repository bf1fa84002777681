// Under Node: the thrown Error becomes the error text of the result, with its line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHost, outcome, deployContext } from '../tagship-plugin-testing.js';

const { health } = await import('../app.js');

test('the Error becomes "Error: the registry said no (at app.js:…)"', () => {
  const host = fakeHost();
  const result = outcome(() => health.check(deployContext()));
  assert.match(result.err, /^Error: the registry said no \(at \S*app\.js:\d+:\d+\)$/);
  assert.deepEqual(host.logs, [{ level: 'info', message: 'checking registry v3.1.0 on gstg-cny' }]);
});
