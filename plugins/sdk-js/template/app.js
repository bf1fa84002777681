// A tagship health check in JavaScript: GET the configured `url`; healthy iff it answers 200;
// unhealthy when it answers anything else, times out or refuses the connection.
//
//   config:  url    the URL to request, e.g. https://registry.{{environment}}.example.com/health
//   grants:  the URL's host (allow_hosts / --allow-host)
//
// Build: `npm run build` (writes plugin.wasm). Test: `npm test`.
// `./tagship-plugin.js` is the SDK, copied here by `npm run sync` (part of build and test).

import {
  healthCheck,
  requireConfig,
  get,
  healthy,
  unhealthy,
  info,
  HttpError,
} from './tagship-plugin.js';

export const health = healthCheck((ctx) => {
  const url = requireConfig('url'); // throws "missing config key `url`: ..." when unset
  let response;
  try {
    response = get(url); // only granted hosts answer; a refusal throws an HttpError
  } catch (e) {
    // Not answering is a verdict on the service; a denied or invalid request is a problem of
    // the configuration, so it stays the check's error (the runner fails closed).
    if (e instanceof HttpError && (e.kind === 'timeout' || e.kind === 'connection')) {
      return unhealthy(`${url} is not serving on ${ctx.stage}: ${e.message}`, {
        threshold: '== 200',
      });
    }
    throw e;
  }
  info(`${url} answered HTTP ${response.status}`);
  return judge(url, response.status, ctx.stage);
});

/** The verdict for one answer. Pure, so `node --test` tests it without a host. */
export function judge(url, status, stage) {
  const measured = { value: status, threshold: '== 200' };
  return status === 200
    ? healthy(`${url} answered HTTP 200 on ${stage}`, measured)
    : unhealthy(`${url} answered HTTP ${status} on ${stage}, expected 200`, measured);
}
