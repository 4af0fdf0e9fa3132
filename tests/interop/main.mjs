// tests/interop/main.mjs: runs every sigstore-js interop case against FULCRUM_URL (CT_MODE says
// whether it runs the embedded CT log or none) and prints "N passed, N failed" as the last line;
// exit status 0 only if nothing failed.

import { check, report, waitHealthy } from './common.mjs';
import { fulcioSignerCases } from './fulcio_signer.mjs';
import { bearerCases } from './bearer.mjs';
import { ctCases } from './ct.mjs';

try {
  await waitHealthy();
  await fulcioSignerCases();
  await bearerCases();
  await ctCases();
} catch (err) {
  check(false, 'interop run', err && err.stack ? err.stack : String(err));
}
process.exitCode = report();
