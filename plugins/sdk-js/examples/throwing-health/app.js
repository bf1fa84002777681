// A health check that always throws an Error: the fixture that shows what happens to one.
//
// The SDK's healthCheck() wrapper turns the Error into the error string of the WIT result, so
// `tagship plugin run` exits 5 with a `reason` containing
//   Error: the registry said no (at app.js:LINE:COLUMN)
// Without the wrapper (a bare `export const health = { check() { throw new Error(...) } }`),
// componentize-js fails with "expected a string, received [object]" and the call aborts without
// the message.

import { healthCheck, info } from './tagship-plugin.js';

export const health = healthCheck((ctx) => {
  info(`checking ${ctx.component} ${ctx.version} on ${ctx.stage}`);
  throw new Error('the registry said no');
});
