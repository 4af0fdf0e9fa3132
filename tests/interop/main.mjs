// tests/interop/main.mjs: runs every sigstore-js interop case against FULCRUM_URL and prints
// "N passed, N failed" as the last line; exit status 0 only if nothing failed.

import { check, report, waitHealthy } from './common.mjs';
import { fulcioSignerCases } from './fulcio_signer.mjs';
import { bearerCases } from './bearer.mjs';

try {
  await waitHealthy();
  await fulcioSignerCases();
  await bearerCases();
} catch (err) {
  check(false, 'interop run', err && err.stack ? err.stack : String(err));
}
process.exitCode = report();
