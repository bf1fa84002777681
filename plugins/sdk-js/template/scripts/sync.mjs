// Copies into the plugin's folder (the current directory: npm runs scripts there) what the build
// and the tests need beside app.js. componentize-js reads no file outside the folder it runs in,
// so the WIT contract and the SDK must be copies, not references:
//
//   wit/                       the tagship WIT contract (package tagship:plugin)
//   tagship-plugin.js          the SDK
//   tagship-plugin-testing.js  the fake host for `node --test`
//
// From where:
//   TAGSHIP_WIT     the wit/ folder of a tagship checkout. Default: ../../../wit (the
//                   repository's own, for plugins/sdk-js/template), else the nearest
//                   wit/tagship.wit in the folders above.
//   TAGSHIP_SDK_JS  the folder holding tagship-plugin.js (plugins/sdk-js of that checkout).
//                   Default: .., else the nearest folder above holding tagship-plugin.js.
//
// When a source is not found but a copy is here already, the copy is kept (a plugin repository
// may commit its copies). The WIT's package version must be the one the SDK imports.

import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import process from 'node:process';

const here = process.cwd();
const SDK_FILES = ['tagship-plugin.js', 'tagship-plugin-testing.js'];

function fail(message) {
  console.error(`sync: ${message}`);
  process.exit(1);
}

// The folder to copy from: `$variable` when set; else `defaultDir` when it holds `marker`; else
// the nearest `below` folder of the current directory's parents (up to 6 up) that holds it.
function source(variable, defaultDir, below, marker) {
  const given = process.env[variable];
  if (given) {
    const dir = resolve(here, given);
    if (!existsSync(join(dir, marker))) fail(`${variable}=${given}: no ${marker} in ${dir}`);
    return dir;
  }
  if (existsSync(join(defaultDir, marker))) return defaultDir;
  let parent = dirname(here);
  for (let i = 0; i < 6; i += 1) {
    const dir = join(parent, below);
    if (existsSync(join(dir, marker))) return dir;
    if (dirname(parent) === parent) break;
    parent = dirname(parent);
  }
  return undefined;
}

function witVersion(dir) {
  const text = readFileSync(join(dir, 'tagship.wit'), 'utf8');
  return /^\s*package\s+tagship:plugin@([^;\s]+)\s*;/m.exec(text)?.[1];
}

function sdkVersion(dir) {
  const match = /export const API_VERSION = '([^']+)'/.exec(
    readFileSync(join(dir, 'tagship-plugin.js'), 'utf8'),
  );
  return match?.[1];
}

const show = (dir) => relative(here, dir) || '.';

const witCopy = join(here, 'wit');
const witDir = source('TAGSHIP_WIT', resolve(here, '../../../wit'), 'wit', 'tagship.wit');
const sdkDir = source('TAGSHIP_SDK_JS', resolve(here, '..'), '.', 'tagship-plugin.js');
if (!witDir && !existsSync(join(witCopy, 'tagship.wit'))) {
  fail(
    'cannot find the tagship WIT contract: set TAGSHIP_WIT to the wit/ folder of your tagship ' +
      'checkout (e.g. TAGSHIP_WIT=../tagship/wit npm run build)',
  );
}
if (!sdkDir && !existsSync(join(here, 'tagship-plugin.js'))) {
  fail(
    'cannot find tagship-plugin.js: set TAGSHIP_SDK_JS to the plugins/sdk-js folder of your ' +
      'tagship checkout',
  );
}

// Check before copying: a failed sync leaves the copies as they were.
const wit = witVersion(witDir ?? witCopy);
const sdk = sdkVersion(sdkDir ?? here);
if (wit !== sdk) {
  fail(
    `${show(join(witDir ?? witCopy, 'tagship.wit'))} is tagship:plugin@${wit} but tagship-plugin.js ` +
      `imports @${sdk}: take the WIT and the SDK from the same tagship checkout`,
  );
}

if (witDir && resolve(witDir) !== resolve(witCopy)) {
  rmSync(witCopy, { recursive: true, force: true });
  mkdirSync(witCopy);
  cpSync(witDir, witCopy, {
    recursive: true,
    filter: (path) => statSync(path).isDirectory() || path.endsWith('.wit'),
  });
}
if (sdkDir && resolve(sdkDir) !== resolve(here)) {
  for (const name of SDK_FILES) cpSync(join(sdkDir, name), join(here, name));
}

console.error(
  `sync: wit/ ${witDir ? `from ${show(witDir)}` : '(kept)'}, SDK ${sdkDir ? `from ${show(sdkDir)}` : '(kept)'}` +
    ` (tagship:plugin@${wit})`,
);
